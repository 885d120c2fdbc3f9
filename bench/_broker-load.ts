/** The broker benchmark's unit of load: a /take and the /release of its lease, as a client does them. */
import type { Workload } from "./_load";

export function takeAndRelease(baseUrl: string): Workload {
  const takeUrl = `${baseUrl}/take`;
  const releaseUrl = `${baseUrl}/release`;
  const headers = { "content-type": "application/json" };
  return {
    baseUrl,
    async send() {
      const took = await fetch(takeUrl);
      const lease = (await took.json()) as { lease?: string };
      if (!took.ok || !lease.lease) throw new Error(`GET /take → ${took.status} ${JSON.stringify(lease)}`);
      const released = await fetch(releaseUrl, { method: "POST", headers, body: JSON.stringify({ lease: lease.lease, ok: true }) });
      const result = await released.json();
      if (!released.ok) throw new Error(`POST /release → ${released.status} ${JSON.stringify(result)}`);
    },
  };
}
