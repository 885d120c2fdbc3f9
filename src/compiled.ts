/**
 * Whether this keypool runs as a compiled binary (`bun build --compile`): its entry point then lives in
 * the binary's embedded file system (`/$bunfs/…`, or `B:/~BUN/…` on Windows), not on disk.
 */
export function isCompiledBinary(): boolean {
  return Bun.main.startsWith("/$bunfs/") || /^[A-Z]:[\\/]~BUN[\\/]/i.test(Bun.main);
}
