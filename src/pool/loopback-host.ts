/**
 * Which `Host` a listener answers. A listener on loopback with no credentials trusts whoever can
 * connect to it: every process on the machine, and — through DNS rebinding — any web page a browser
 * on the machine opens (the page's own name, re-pointed at 127.0.0.1, makes its requests same-origin).
 * Such a page always sends its own name as `Host`, so a listener like that answers only loopback
 * names, and names the operator lists in `server.allowed_hosts`.
 */

/** Whether a listen address is loopback only, as config addresses write it (`localhost`, `127.0.0.1`, `::1`). */
export function isLoopbackAddress(host: string): boolean {
  const name = host.toLowerCase();
  return name === "localhost" || name === "::1" || name === "[::1]" || IPV4_LOOPBACK.test(name);
}

/**
 * The Host check for a listener, or undefined when it needs none: it listens beyond loopback (an
 * open listener is warned about at start instead) or asks clients for credentials.
 * The check takes the `Host` header and answers whether it may be served; no header (HTTP/1.0,
 * never a browser) may.
 */
export function hostCheckFor(listener: {
  host: string;
  hasCredentials: boolean;
  allowedHosts?: readonly string[];
}): ((hostHeader: string | null) => boolean) | undefined {
  if (listener.hasCredentials || !isLoopbackAddress(listener.host)) return undefined;
  const allowed = new Set((listener.allowedHosts ?? []).map((name) => name.toLowerCase()));
  // Clients send one Host over and over: remembering the last good one keeps the parse off the hot path.
  let lastAllowed: string | undefined;
  return function isAllowedHost(hostHeader) {
    if (hostHeader === null || hostHeader === lastAllowed) return true;
    const name = hostnameOf(hostHeader);
    if (!isLoopbackName(name) && !allowed.has(name)) return false;
    lastAllowed = hostHeader;
    return true;
  };
}

/** The name in a `Host` header, lowercase, without its port or a trailing dot. */
export function hostnameOf(hostHeader: string): string {
  const value = hostHeader.trim().toLowerCase();
  if (value.startsWith("[")) {
    const end = value.indexOf("]");
    return end === -1 ? value : value.slice(0, end + 1);
  }
  const colon = value.indexOf(":");
  const name = colon === -1 ? value : value.slice(0, colon);
  return name.endsWith(".") ? name.slice(0, -1) : name;
}

const IPV4_LOOPBACK = /^127(\.\d{1,3}){3}$/;

// `*.localhost` never leaves the machine (RFC 6761; browsers resolve it to loopback themselves).
function isLoopbackName(name: string): boolean {
  if (name === "localhost" || name.endsWith(".localhost") || IPV4_LOOPBACK.test(name)) return true;
  return name === "[::1]" || name.startsWith("[::ffff:127.");
}

/** Why a request was refused, for the error body: what was wrong, and the three ways to be served. */
export function hostRefusalMessage(hostHeader: string, credentialField: string): string {
  const name = hostnameOf(hostHeader).slice(0, 100);
  return (
    `Host "${name}" is not a loopback name: this listener is on loopback without ${credentialField}, ` +
    "so it answers only " +
    `requests to localhost, 127.0.0.1 or [::1] (a web page could otherwise reach it through DNS rebinding) — ` +
    `use one of those, set ${credentialField}, or add the name to server.allowed_hosts`
  );
}
