import type { FailureBucket } from "../pool/usage";
import type { TokenCounts } from "../pool/pricing";

/** One release, as the usage ledger counts it. */
export interface UsageEntry {
  ok: boolean;
  /** The failure's class; ignored for a success. */
  failure?: FailureBucket;
  tokens?: TokenCounts;
  costMicros: number;
}
