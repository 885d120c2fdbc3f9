/** Exit codes shared by every command (documented in the README). */
/** `interrupted`: a second SIGINT/SIGTERM cut a graceful shutdown short (128 + SIGINT, as shells report Ctrl-C). */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

/** Thrown by a command to end with a message on stderr and a specific exit code. */
export class CliExit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "CliExit";
  }
}
