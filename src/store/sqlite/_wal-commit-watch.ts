import { closeSync, fstatSync, openSync, realpathSync } from "node:fs";

/** The wal-index's format version, the first word of its header (SQLite's WALINDEX_MAX_VERSION). */
const WAL_INDEX_VERSION = 3_007_000;
/** Where the -shm file begins: the first copy of the wal-index header, 48 bytes. */
const HEADER_BYTES = 48;
/** SQLite grows the -shm file 32 KiB at a time: an initialized one is never smaller. */
const SMALLEST_INITIALIZED_SHM = 32 * 1024;
// 32-bit words of the header: iVersion, unused, iChange (bumped by every commit), then isInit in the
// next word's first byte; aCksum, the checksum over everything before it, in words 10 and 11.
const VERSION_WORD = 0;
const CHANGE_WORD = 2;
const INIT_BYTE = 12;
const CHECKSUM_WORDS = [10, 11] as const;

/**
 * Tells without a statement whether any connection may have committed to a WAL-mode database since
 * the last look. Every commit, by any connection of any process, rewrites the wal-index header at the
 * start of the `-shm` file, which SQLite maps shared between them: its commit counter and the
 * checksum over the header change. Reading them from a shared mapping of that file costs nanoseconds,
 * where `PRAGMA data_version` (the authority on *other* connections' commits) takes a read lock with
 * two system calls and runs a statement — microseconds, once or twice a request on the hot path.
 *
 * It only ever says "maybe": an unmoved header means no commit at all; a moved one sends the caller
 * to data_version as before (own commits move it too). The mapping stays valid while the caller's
 * connection is open — SQLite empties a -shm file only when it opens one no other connection has
 * open — so `watch` must be called after the connection has read the file, and the watch dropped
 * before the connection closes.
 */
export class WalCommitWatch {
  private readonly words: Uint32Array;
  private change = -1;
  private checksum0 = -1;
  private checksum1 = -1;

  private constructor(words: Uint32Array) {
    this.words = words;
  }

  /**
   * Watches the state file at `path` (which an open connection has read, so its -shm is initialized),
   * or undefined when its wal-index cannot be mapped here (Windows, a file system without shared
   * memory, an unexpected layout): the caller then asks data_version every time.
   */
  static watch(path: string): WalCommitWatch | undefined {
    if (process.platform === "win32") return undefined;
    let shm: string;
    try {
      // SQLite names the -shm after the database's real path, symbolic links followed.
      shm = `${realpathSync(path)}-shm`;
      const fd = openSync(shm, "r");
      try {
        // Mapping past a file's end faults on access: only a whole, initialized -shm is mapped.
        if (fstatSync(fd).size < SMALLEST_INITIALIZED_SHM) return undefined;
      } finally {
        closeSync(fd);
      }
      const map = Bun.mmap(shm, { shared: true, size: HEADER_BYTES });
      if (map.byteLength < HEADER_BYTES || map.byteOffset % 4 !== 0) return undefined;
      const words = new Uint32Array(map.buffer, map.byteOffset, HEADER_BYTES / 4);
      if (words[VERSION_WORD] !== WAL_INDEX_VERSION || map[INIT_BYTE] !== 1) return undefined;
      return new WalCommitWatch(words);
    } catch {
      return undefined;
    }
  }

  /**
   * Whether the header changed since the last call (the first call says it did). Call it before
   * asking data_version, never after: a commit landing between the two is then seen by the next call.
   */
  moved(): boolean {
    const { words } = this;
    const change = words[CHANGE_WORD]!;
    const checksum0 = words[CHECKSUM_WORDS[0]]!;
    const checksum1 = words[CHECKSUM_WORDS[1]]!;
    if (change === this.change && checksum0 === this.checksum0 && checksum1 === this.checksum1) return false;
    this.change = change;
    this.checksum0 = checksum0;
    this.checksum1 = checksum1;
    return true;
  }
}
