/**
 * Counts round trips between a client and PostgreSQL: a TCP relay on port 0 in front of the server that
 * counts the client's turns to speak. Whatever the client sends before the server's next answer (one
 * statement, or a pipelined batch of them) is one turn, so the count does not depend on how the store
 * builds its statements, only on how often it waits for the server.
 */
import type { Socket } from "bun";

export interface RoundTripRelay extends AsyncDisposable {
  /** `databaseUrl` with its host and port replaced by the relay's. */
  url: string;
  /** Turns counted so far, over every connection. */
  turns(): number;
}

interface Side {
  peer?: Socket<Side>;
  /** Bytes for `peer`, held until it is connected or can take more. */
  held: Uint8Array[];
  /** Client sides only: whether the server has answered since this client last spoke. */
  answered: boolean;
  client: boolean;
}

export async function startRoundTripRelay(databaseUrl: string): Promise<RoundTripRelay> {
  const target = new URL(databaseUrl);
  let turns = 0;
  const sockets = new Set<Socket<Side>>();

  const flush = (side: Side) => {
    while (side.peer && side.held.length > 0) {
      const chunk = side.held[0]!;
      const written = side.peer.write(chunk);
      if (written < chunk.length) {
        side.held[0] = chunk.subarray(Math.max(0, written));
        return;
      }
      side.held.shift();
    }
  };
  const handlers = {
    binaryType: "uint8array" as const,
    open(socket: Socket<Side>) {
      sockets.add(socket);
    },
    data(socket: Socket<Side>, bytes: Uint8Array) {
      const side = socket.data;
      if (side.client) {
        if (side.answered) turns++;
        side.answered = false;
      } else if (side.peer) {
        side.peer.data.answered = true;
      }
      side.held.push(bytes.slice());
      flush(side);
    },
    drain(socket: Socket<Side>) {
      flush(socket.data);
    },
    close(socket: Socket<Side>) {
      sockets.delete(socket);
      socket.data.peer?.end();
    },
  };
  const listener = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      ...handlers,
      open(client) {
        handlers.open(client);
        client.data = { held: [], answered: true, client: true };
        void Bun.connect<Side>({
          hostname: target.hostname,
          port: Number(target.port || 5432),
          socket: {
            ...handlers,
            open(server) {
              handlers.open(server);
              server.data = { peer: client, held: [], answered: false, client: false };
              client.data.peer = server;
              flush(client.data);
            },
          },
        }).catch(() => client.end());
      },
    },
  });
  const relayed = new URL(databaseUrl);
  relayed.hostname = "127.0.0.1";
  relayed.port = String(listener.port);
  return {
    url: relayed.toString(),
    turns: () => turns,
    async [Symbol.asyncDispose]() {
      for (const socket of sockets) socket.end();
      listener.stop(true);
    },
  };
}
