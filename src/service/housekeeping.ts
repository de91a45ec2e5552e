import type { Logger } from "pino";
import { directoryBytes } from "../fs.ts";
import type { AppKey } from "../store/records.ts";
import { trimDependencyCache } from "../synth/cache-trim.ts";

/** What housekeeping prunes; declared here, where it is used. */
export interface HousekeepingRecords {
  pruneRuns(app: AppKey, before: string): Promise<number>;
  pruneEvents(scope: string, before: string): Promise<number>;
}

export interface HousekeepingOptions {
  readonly records: HousekeepingRecords;
  readonly app: AppKey;
  readonly scope: string;
  readonly dataDir: string;
  readonly cacheDir: string;
  readonly retentionDays: number;
  readonly cacheMaxBytes: number;
  readonly logger: Logger;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** A dependency cache entry used this recently is never trimmed: a synthesis may be reading it. */
const CACHE_KEEP_MS = 60 * 60 * 1000;
/** How long a measured size of the data directory serves before it is measured again. */
const SIZE_FRESH_MS = 30_000;

/**
 * Keeps disk use bounded: prunes runs and events past the retention (on the
 * shared database: one replica, the leader, does it), trims this replica's
 * dependency cache least recently used first, and measures its data directory.
 */
export class Housekeeping {
  readonly #options: HousekeepingOptions;
  #size: { bytes: number; at: number } | undefined;
  #measuring: Promise<number> | undefined;

  constructor(options: HousekeepingOptions) {
    this.#options = options;
  }

  /** Deletes runs (with their logs and plans) and ended events older than the retention. */
  async prune(now = new Date()): Promise<void> {
    const { records, app, scope, retentionDays, logger } = this.#options;
    const before = new Date(now.getTime() - retentionDays * DAY_MS).toISOString();
    const runs = await records.pruneRuns(app, before);
    const events = await records.pruneEvents(scope, before);
    if (runs + events > 0) logger.info({ runs, events, before }, "pruned runs and events past the retention");
  }

  async trimCache(now = new Date()): Promise<void> {
    const { cacheDir, cacheMaxBytes, logger } = this.#options;
    const { removed, keptBytes } = await trimDependencyCache(cacheDir, {
      maxBytes: cacheMaxBytes,
      now,
      keepMs: CACHE_KEEP_MS,
    });
    if (removed.length > 0) {
      logger.info({ removed, keptBytes, maxBytes: cacheMaxBytes }, "trimmed the dependency cache");
    }
  }

  /** The data directory's size in bytes, measured at most every half minute. */
  dataDirBytes(): Promise<number> {
    const fresh = this.#size && Date.now() - this.#size.at < SIZE_FRESH_MS;
    if (fresh && this.#size) return Promise.resolve(this.#size.bytes);
    this.#measuring ??= directoryBytes(this.#options.dataDir)
      .then((bytes) => {
        this.#size = { bytes, at: Date.now() };
        return bytes;
      })
      .finally(() => {
        this.#measuring = undefined;
      });
    return this.#measuring;
  }
}
