import { realpathSync } from "node:fs";

/** The header's first copy: 48 bytes (SQLite's WAL-index format), read as native-order 32-bit words. */
const HEADER_WORDS = 12;
/** The header's first word: the WAL-index format's version, the same since SQLite 3.7.0. */
const WAL_INDEX_VERSION = 3007000;

/**
 * Whether any connection has committed to a state file, read from the header of its write-ahead log's
 * index: the `-shm` file every connection to the file maps and updates before a commit returns (the
 * frame count, a change counter, the log's salt; SQLite's documented WAL-index format). Reading it is
 * a few loads from memory; asking SQLite (`PRAGMA data_version`) costs a read transaction — two
 * `fcntl` locks and an `fstat`, about 4 µs — which the hot path paid up to once per event-loop turn.
 *
 * Unlike data_version it also moves for this process's own commits; the hot path treats those as
 * another connection's, which costs a re-read, never a missed change.
 */
export class WalIndexHeader {
  private readonly seen = new Uint32Array(HEADER_WORDS);
  private version = 0;

  private constructor(private readonly words: Uint32Array) {}

  /** The header of the state file at `path`, or undefined where its index cannot be mapped (the caller asks SQLite). */
  static open(path: string): WalIndexHeader | undefined {
    try {
      // SQLite keeps the index beside the file a symbolic link points to.
      const map = Bun.mmap(`${realpathSync(path)}-shm`, { shared: true, size: HEADER_WORDS * 4 });
      if (map.byteLength < HEADER_WORDS * 4 || map.byteOffset % 4 !== 0) return undefined;
      const words = new Uint32Array(map.buffer, map.byteOffset, HEADER_WORDS);
      // Anything else is not an index this SQLite reads the same way: ask SQLite instead.
      return words[0] === WAL_INDEX_VERSION ? new WalIndexHeader(words) : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * A number that has moved if a transaction committed since the last call. A header read while a
   * writer is halfway through updating it counts as a change, and the next call sees the rest: a
   * spare re-read. A commit that has returned is always seen, since the header is written before it returns.
   */
  commits(): number {
    const { words, seen } = this;
    let changed = false;
    for (let i = 0; i < HEADER_WORDS; i++) {
      const word = words[i]!;
      if (word !== seen[i]) {
        seen[i] = word;
        changed = true;
      }
    }
    if (changed) this.version++;
    return this.version;
  }
}
