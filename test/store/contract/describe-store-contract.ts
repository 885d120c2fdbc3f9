import { describe } from "bun:test";
import { type Backing, Harness, type MakeBacking } from "./_harness";
import { budgetsContract } from "./budgets";
import { encryptionContract } from "./encryption";
import { failurePolicyContract } from "./failure-policy";
import { keyAdminContract } from "./key-admin";
import { modelsContract } from "./models";
import { sessionsContract } from "./sessions";
import { takeReleaseContract } from "./take-release";

export type { Backing, MakeBacking };

/**
 * The repository contract: what every PoolStore must do, whatever keeps its state. Each store's
 * test file runs it with a factory of fresh backings (a SQLite file, a PostgreSQL schema).
 */
export function describeStoreContract(name: string, make: MakeBacking, options: { skip?: boolean } = {}): void {
  describe.skipIf(options.skip === true)(`${name} — store contract`, () => {
    const h = new Harness(make);
    takeReleaseContract(h);
    failurePolicyContract(h);
    sessionsContract(h);
    keyAdminContract(h);
    encryptionContract(h);
    modelsContract(h);
    budgetsContract(h);
  });
}
