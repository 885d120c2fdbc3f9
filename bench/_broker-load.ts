/** The broker benchmark's unit of load: a /take and the /release of what it took, as a client does them. */
import type { Workload } from "./_load";

/**
 * keypool's client releases the lease it was given; poolctl has no leases, so its client names the key
 * (`by: "id"`). Either way the release is one more request, so the two brokers do the same work.
 */
export function takeAndRelease(
  baseUrl: string,
  by: "lease" | "id" = "lease",
  /** Each take names the model this gives for the take's number (`?model=`), and its release names it too. */
  modelOf?: (n: number) => string,
): Workload {
  const takeUrl = `${baseUrl}/take`;
  const releaseUrl = `${baseUrl}/release`;
  const headers = { "content-type": "application/json" };
  let sent = 0;
  return {
    baseUrl,
    async send() {
      const model = modelOf?.(sent++);
      const took = await fetch(model === undefined ? takeUrl : `${takeUrl}?model=${encodeURIComponent(model)}`);
      const taken = (await took.json()) as { lease?: string; id?: string };
      const handle = taken[by];
      if (!took.ok || !handle) throw new Error(`GET /take → ${took.status} ${JSON.stringify(taken)}`);
      const released = await fetch(releaseUrl, {
        method: "POST",
        headers,
        body: JSON.stringify(model === undefined ? { [by]: handle, ok: true } : { [by]: handle, ok: true, model }),
      });
      const result = await released.json();
      if (!released.ok) throw new Error(`POST /release → ${released.status} ${JSON.stringify(result)}`);
    },
  };
}
