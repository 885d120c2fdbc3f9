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
      const released = await fetch(releaseUrl, {
        method: "POST",
        headers,
        body: JSON.stringify({ lease: lease.lease, ok: true }),
      });
      const result = await released.json();
      if (!released.ok) throw new Error(`POST /release → ${released.status} ${JSON.stringify(result)}`);
    },
  };
}

/** The same unit against poolctl, whose release names the key it took (it has no leases). */
export function takeAndReleaseById(baseUrl: string): Workload {
  const takeUrl = `${baseUrl}/take`;
  const releaseUrl = `${baseUrl}/release`;
  const headers = { "content-type": "application/json" };
  return {
    baseUrl,
    async send() {
      const took = await fetch(takeUrl);
      const key = (await took.json()) as { id?: string };
      if (!took.ok || !key.id) throw new Error(`GET /take → ${took.status} ${JSON.stringify(key)}`);
      const released = await fetch(releaseUrl, {
        method: "POST",
        headers,
        body: JSON.stringify({ id: key.id, ok: true }),
      });
      const result = await released.json();
      if (!released.ok) throw new Error(`POST /release → ${released.status} ${JSON.stringify(result)}`);
    },
  };
}
