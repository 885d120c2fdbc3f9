import type { Config } from "../config/types";
import type { Clock } from "../pool/clock";
import { databaseUrlOf, maskDatabaseUrl } from "./postgres/database-url";
import { PostgresStore } from "./postgres/postgres-store";
import { SqliteStore } from "./sqlite/sqlite-store";
import type { TokenCipher } from "./token-cipher";
import type { PoolStore } from "./types";

type Env = Record<string, string | undefined>;

export interface StoreDeps {
  clock: Clock;
  random?: () => number;
  cipher?: TokenCipher;
  env?: Env;
  /** PostgreSQL only: told when connections that stopped answering were replaced. */
  onConnectionsReplaced?: () => void;
}

export interface OpenedStore {
  store: PoolStore;
  kind: "sqlite" | "postgres";
  /** Where the state lives, fit for a log line: `sqlite:/path/keypool.db`, or the database URL without its password. */
  where: string;
}

/**
 * The store the config asks for: PostgreSQL when `store.postgres` (or KEYPOOL_DATABASE_URL) names
 * a database, else the SQLite state file. PostgreSQL is migrated and checked before this returns.
 * @throws DomainError STORE_UNAVAILABLE when the database cannot be reached at start.
 */
export async function createStore(config: Pick<Config, "store" | "stateFile">, deps: StoreDeps): Promise<OpenedStore> {
  const url = databaseUrlOf(config, deps.env);
  if (url === undefined) {
    const store = new SqliteStore({
      path: config.stateFile,
      clock: deps.clock,
      random: deps.random,
      cipher: deps.cipher,
    });
    return { store, kind: "sqlite", where: `sqlite:${config.stateFile}` };
  }
  const postgres = config.store?.postgres;
  const store = await PostgresStore.open({
    url,
    timeoutSec: postgres?.timeoutSec,
    maxConnections: postgres?.maxConnections,
    clock: deps.clock,
    random: deps.random,
    cipher: deps.cipher,
    onReplaced: deps.onConnectionsReplaced,
  });
  return { store, kind: "postgres", where: maskDatabaseUrl(url) };
}
