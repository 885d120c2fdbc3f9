import { Elysia } from "elysia";
import {
  AdminKeyJson,
  KeyChangesBody,
  KeyListJson,
  NewKeyBody,
  PoolKeyParams,
  PoolParams,
  PoolUsageJson,
  PoolsJson,
  RemovedJson,
  UsageQueryJson,
} from "./admin-schemas";
import type { KeyAdminService } from "../broker/key-admin-service";
import { errors } from "./schemas";

const OWNERSHIP =
  "A key from a tokens file (or the environment) belongs to it: only `enabled` may change here, anything else answers 409 KEY_OWNED_BY_FILE.";

/** Key administration and usage (auth): pools, their keys, and what each key did and cost. */
export function adminKeysRoutes(admin: KeyAdminService) {
  return new Elysia({ name: "admin-keys" })
    .get("/pools", () => admin.pools(), {
      response: { 200: PoolsJson, ...errors(401) },
      detail: { summary: "List the pools with their key counts", tags: ["admin"] },
    })
    .get("/pools/:pool/keys", ({ params }) => admin.list(params.pool), {
      params: PoolParams,
      response: { 200: KeyListJson, ...errors(401, 404) },
      detail: { summary: "List a pool's keys with origin, switch and limits (tokens masked)", tags: ["admin"] },
    })
    .post("/pools/:pool/keys", ({ params, body }) => admin.add(params.pool, body), {
      params: PoolParams,
      body: NewKeyBody,
      response: { 200: AdminKeyJson, ...errors(400, 401, 404, 409, 413) },
      detail: {
        summary: "Add a key",
        description:
          "The next take may hand it out; it is kept in the store across reloads and restarts. 409 when the pool already has the id (or the token), or its tokens file defines the id.",
        tags: ["admin"],
      },
    })
    .patch("/pools/:pool/keys/:id", ({ params, body }) => admin.update(params.pool, params.id, body), {
      params: PoolKeyParams,
      body: KeyChangesBody,
      response: { 200: AdminKeyJson, ...errors(400, 401, 404, 409, 413) },
      detail: { summary: "Enable, disable or change a key", description: OWNERSHIP, tags: ["admin"] },
    })
    .delete("/pools/:pool/keys/:id", ({ params }) => admin.remove(params.pool, params.id), {
      params: PoolKeyParams,
      response: { 200: RemovedJson, ...errors(401, 404, 409) },
      detail: {
        summary: "Remove a key the admin API added",
        description: `Its leases end with it; its usage still counts in the pool's totals. ${OWNERSHIP}`,
        tags: ["admin"],
      },
    })
    .get("/pools/:pool/usage", ({ params, query }) => admin.usage(params.pool, query.window), {
      params: PoolParams,
      query: UsageQueryJson,
      response: { 200: PoolUsageJson, ...errors(400, 401, 404) },
      detail: {
        summary: "Usage and estimated cost, per key and in total",
        description: "From hourly buckets: window hour, day (default) or all.",
        tags: ["admin"],
      },
    });
}
