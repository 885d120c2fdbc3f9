/**
 * Sends one HTTP/1.1 request byte for byte over a plain socket. fetch() adds and rewrites headers
 * (Connection, Host, …) on its own; tests of what the gateway strips must control every one.
 * The request should carry `Connection: close` so the answer ends with the socket.
 */
export async function rawHttp(url: string, lines: string[], body = ""): Promise<{ status: number; head: string }> {
  const text = await sendRaw(url, `${lines.join("\r\n")}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const head = text.slice(0, text.indexOf("\r\n\r\n"));
  return { status: Number(head.split(" ")[1]), head };
}

/** Writes `request` as it is and reads the answer until the server closes the socket. */
export async function sendRaw(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const ended = Promise.withResolvers<string>();
  let received = "";
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data(_socket, data) {
        received += data.toString();
      },
      close() {
        ended.resolve(received);
      },
      error(_socket, error) {
        ended.reject(error);
      },
    },
  });
  socket.write(request);
  return ended.promise;
}
