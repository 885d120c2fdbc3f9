import { type FSWatcher, watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { Logger } from "../log";

export interface ConfigWatcher {
  /** Watches exactly these files from now on (the config and its tokens files). */
  watch(files: readonly string[]): void;
  stop(): Promise<void>;
}

export interface ConfigWatcherOptions {
  onChange: (files: string[]) => void;
  logger: Logger;
  /** Changes closer together than this become one reload: editors write a file in several steps. */
  debounceMs?: number;
}

/**
 * Calls `onChange` once a burst of changes to the watched files has settled. It watches their
 * directories, not the files: editors and `kubectl cp`-style tools save by writing a new file and
 * renaming it over the old one, which a watch on the old file's inode would never see.
 */
export function createConfigWatcher(options: ConfigWatcherOptions): ConfigWatcher {
  const debounceMs = options.debounceMs ?? 150;
  const watchers = new Map<string, FSWatcher>();
  let files = new Set<string>();
  let changed = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | undefined;

  const fire = () => {
    timer = undefined;
    const paths = [...changed];
    changed = new Set();
    options.onChange(paths);
  };

  const onEvent = (dir: string, name: string | Buffer | null) => {
    // Without a name (some platforms), any change in the directory may be ours.
    const path = name === null ? undefined : resolve(dir, String(name));
    if (path !== undefined && !files.has(path)) return;
    changed.add(path ?? dir);
    if (timer) clearTimeout(timer);
    timer = setTimeout(fire, debounceMs);
  };

  return {
    watch(list) {
      files = new Set(list.map((f) => resolve(f)));
      const dirs = new Set([...files].map((f) => dirname(f)));
      for (const [dir, watcher] of watchers) {
        if (dirs.has(dir)) continue;
        watcher.close();
        watchers.delete(dir);
      }
      for (const dir of dirs) {
        if (watchers.has(dir)) continue;
        try {
          const watcher = watch(dir, { persistent: false }, (_event, name) => onEvent(dir, name));
          watcher.on("error", (error) =>
            options.logger.warn("stopped watching a config directory", { dir, error: error.message }),
          );
          watchers.set(dir, watcher);
        } catch (error) {
          const watched = [...files].filter((f) => dirname(f) === dir).map((f) => basename(f));
          options.logger.warn("cannot watch config files; they reload only on SIGHUP or POST /reload", {
            dir,
            files: watched,
            error: (error as Error).message,
          });
        }
      }
    },
    async stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}
