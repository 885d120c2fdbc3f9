/** Something that listens: `stop(false)` refuses new connections and lets open requests finish; `stop(true)` cuts them. */
export interface Drainable {
  stop(force: boolean): Promise<unknown>;
}

/**
 * Stops every listener at once. New connections are refused immediately; requests and streams in
 * flight run on until they end or `timeoutMs` passes, when whatever is still open is cut.
 * Resolves true when it had to cut.
 */
export async function drainListeners(listeners: Drainable[], timeoutMs: number): Promise<boolean> {
  const graceful = Promise.all(listeners.map((l) => l.stop(false)));
  let timer: Timer | undefined;
  const deadline = new Promise<"deadline">((resolve) => {
    timer = setTimeout(() => resolve("deadline"), timeoutMs);
  });
  const first = await Promise.race([graceful.then(() => "drained" as const), deadline]);
  clearTimeout(timer);
  if (first === "drained") return false;
  // A forced stop also settles the graceful stops still waiting on those connections.
  await Promise.all(listeners.map((l) => l.stop(true)));
  await graceful;
  return true;
}
