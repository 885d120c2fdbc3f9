import type { KeySpec } from "../src/config/types";

/** `count` synthetic keys with mixed weights, so weighted rotation has real work to do. */
export function benchKeys(count: number): KeySpec[] {
  const width = String(count - 1).length;
  return Array.from({ length: count }, (_, i) => {
    const n = String(i).padStart(width, "0");
    return { id: `k${n}`, token: `sk-bench-${n}`, weight: 1 + (i % 3) };
  });
}
