/** Parses `host:port`, `:port` (all interfaces) or `[v6]:port`; port 0 asks the OS for a free one. */
export function parseAddr(addr: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? (m[2] || "0.0.0.0");
  return { host, port };
}
