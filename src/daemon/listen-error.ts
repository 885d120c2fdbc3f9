/**
 * A listener that could not bind, told in the operator's words: which address, which config field
 * asked for it, why it failed and what to do. The CLI prints the message and exits 1.
 */
export class ListenError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = "ListenError";
  }
}

/**
 * Wraps an error thrown by Bun.serve. `field` names where the address came from, e.g. `server.addr`
 * or `upstream.listen (pool openai)`; `flag` is a command-line override that would also fix it, if any.
 */
export function listenError(
  error: unknown,
  where: { host: string; port: number; field: string; flag?: string },
): ListenError {
  const code = (error as { code?: string })?.code;
  const addr = `${where.host.includes(":") ? `[${where.host}]` : where.host}:${where.port}`;
  const orFlag = where.flag ? `, or pass ${where.flag}` : "";
  switch (code) {
    case "EADDRINUSE":
      return new ListenError(
        `cannot listen on ${addr} (${where.field}): the address is already in use — another keypool (or another program) ` +
          `is listening there. Stop it (e.g. \`lsof -i :${where.port}\` or \`ss -ltnp\` shows which), or set ${where.field} to a free port${orFlag}`,
        code,
      );
    case "EACCES":
      return new ListenError(
        `cannot listen on ${addr} (${where.field}): permission denied — ports below 1024 need privileges; use a port ≥ 1024${orFlag}`,
        code,
      );
    case "EADDRNOTAVAIL":
      return new ListenError(
        `cannot listen on ${addr} (${where.field}): no network interface has the address ${where.host} — use 127.0.0.1, 0.0.0.0 or an address this machine has`,
        code,
      );
    default:
      return new ListenError(
        `cannot listen on ${addr} (${where.field}): ${(error as Error)?.message ?? String(error)}`,
        code,
      );
  }
}
