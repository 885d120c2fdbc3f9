import { Elysia } from "elysia";

export interface ReloadReport {
  pools: Record<string, { added: number; updated: number; removed: number; kept: number }>;
}

/** POST /reload: re-read config and tokens files; an invalid file is rejected and the running pool kept. */
export function adminRoutes(reload: () => Promise<ReloadReport>) {
  return new Elysia({ name: "admin" }).post("/reload", () => reload(), {
    detail: { summary: "Re-read the config and tokens files", tags: ["admin"] },
  });
}
