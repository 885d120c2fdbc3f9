import { it } from "bun:test";
import { startGateway } from "./helpers/gateway-harness";
it("deep", async () => {
  await using gw = await startGateway({ handler: () => Response.json({ ok: true }) });
  for (const n of [100, 1000, 5000, 20000, 100000]) {
    const deep = "[".repeat(n) + "]".repeat(n);
    const t = performance.now();
    const r = await gw.kp.fetch("/release", { method: "POST", headers: { "content-type": "application/json" }, body: deep });
    console.log(n, r.status, (await r.text()).slice(0, 150), (performance.now() - t).toFixed(0), "ms");
  }
  const t = performance.now();
  try { JSON.parse("[".repeat(100000) + "]".repeat(100000)); } catch (e) { console.log("JSON.parse", String(e)); }
  console.log("parse ms", performance.now() - t);
  console.log(gw.kp.logs.filter((l) => l.includes("error")).map((l) => l.slice(0, 300)).join("\n"));
}, 60000);
