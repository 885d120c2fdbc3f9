import { Elysia } from "elysia";
import { ReloadReport as ReloadReportSchema, errors } from "./schemas";

export interface ReloadReport {
  pools: Record<string, { added: number; updated: number; removed: number; kept: number }>;
}

/** POST /reload: re-read config and tokens files; an invalid file is rejected and the running pool kept. */
export function adminRoutes(reload: () => Promise<ReloadReport>) {
  return new Elysia({ name: "admin" }).post("/reload", async () => ({ ok: true as const, ...(await reload()) }), {
    response: { 200: ReloadReportSchema, ...errors(400, 401) },
    detail: {
      summary: "Re-read the config and tokens files",
      description: "An invalid file is rejected with 400 INVALID_CONFIG and the running config kept.",
      tags: ["admin"],
    },
  });
}
