import type { Socket } from "bun";

/**
 * A TCP relay on port 0 in front of a real server, for tests of a network that stops answering
 * without closing anything: a frozen host, a partition that drops packets.
 *
 *   await using relay = startTcpRelay("127.0.0.1", 5432);
 *   relay.freeze(); // connections stay open, nothing gets through in either direction
 *   relay.thaw();   // what was held is delivered: the host woke up
 *   relay.cut();    // every connection open now is reset: the host rebooted
 */
export interface TcpRelay extends AsyncDisposable {
  port: number;
  /** Stops forwarding both ways. Sockets stay open and new ones are accepted; bytes are held, not dropped. */
  freeze(): void;
  /** Resumes forwarding, delivering everything held while frozen, in order. */
  thaw(): void;
  /** Resets (RST) every connection open now, dropping what it held. Later connections are relayed as usual. */
  cut(): void;
  /**
   * Leaves every connection open now hung for good — open, silent, never closed — and relays later
   * ones as usual: a failover behind the same address, a NAT that silently forgot its flows.
   */
  strand(): void;
}

/** One direction of one connection: bytes waiting for `to`, and whether the side they come from has finished. */
interface Lane {
  to?: Socket<Link>;
  held: Uint8Array[];
  ended: boolean;
}

interface Link {
  /** Client to server. */
  up: Lane;
  /** Server to client. */
  down: Lane;
  sockets: Set<Socket<Link>>;
  stranded: boolean;
}

export function startTcpRelay(hostname: string, port: number): TcpRelay {
  const links = new Set<Link>();
  let frozen = false;

  // Writes what the lane holds as far as the socket takes it; `drain` calls again for the rest.
  const pump = (link: Link, lane: Lane) => {
    if (frozen || link.stranded || !lane.to) return;
    while (lane.held.length > 0) {
      const chunk = lane.held[0]!;
      const written = lane.to.write(chunk);
      if (written < 0) return;
      if (written < chunk.length) {
        lane.held[0] = chunk.subarray(written);
        return;
      }
      lane.held.shift();
    }
    if (lane.ended) lane.to.end();
  };
  const pumpBoth = (link: Link) => {
    pump(link, link.up);
    pump(link, link.down);
  };
  const drop = (link: Link) => {
    links.delete(link);
    for (const socket of link.sockets) socket.terminate();
  };

  // Client and server sockets share one handler set: a socket feeds the lane that leads away from it.
  const laneFrom = (socket: Socket<Link>) => (socket === socket.data.up.to ? socket.data.down : socket.data.up);
  const handlers = {
    binaryType: "uint8array" as const,
    data(socket: Socket<Link>, bytes: Uint8Array) {
      // Copied: the relay may hold these bytes long after the callback returns.
      laneFrom(socket).held.push(bytes.slice());
      pump(socket.data, laneFrom(socket));
    },
    drain(socket: Socket<Link>) {
      pumpBoth(socket.data);
    },
    close(socket: Socket<Link>) {
      const link = socket.data;
      link.sockets.delete(socket);
      // A side that closed ends the other once what it sent is delivered, as TCP would.
      laneFrom(socket).ended = true;
      pump(link, laneFrom(socket));
      if (link.sockets.size === 0) links.delete(link);
    },
  };

  const listener = Bun.listen<Link>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      ...handlers,
      open(client) {
        const link: Link = {
          up: { held: [], ended: false },
          down: { to: client, held: [], ended: false },
          sockets: new Set([client]),
          stranded: false,
        };
        client.data = link;
        links.add(link);
        const open = (server: Socket<Link>) => {
          // Cut or disposed while it was connecting: the server side goes too.
          if (!links.has(link)) return server.terminate();
          link.sockets.add(server);
          link.up.to = server;
          pumpBoth(link);
        };
        // A server that refuses the relay refuses the client: its connection is reset.
        Bun.connect<Link>({
          hostname,
          port,
          data: link,
          socket: { ...handlers, open, connectError: () => drop(link) },
        }).catch(() => {});
      },
    },
  });

  return {
    port: listener.port,
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      for (const link of links) pumpBoth(link);
    },
    cut() {
      for (const link of [...links]) drop(link);
    },
    strand() {
      for (const link of links) link.stranded = true;
    },
    async [Symbol.asyncDispose]() {
      for (const link of [...links]) drop(link);
      listener.stop(true);
    },
  };
}
