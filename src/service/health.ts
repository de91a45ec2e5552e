import { randomUUID } from "node:crypto";
import { rm, statfs, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";

/**
 * Whether the runner may take work: the data directory has room and takes
 * writes, and the database answers. Each problem pauses the workers and fails
 * readiness, with one log line when it starts and one when it ends.
 */
export class Health {
  readonly #dataDir: string;
  readonly #minFreeBytes: number;
  readonly #ping: () => Promise<void>;
  readonly #log: Logger;
  #disk: string | undefined;
  #store: string | undefined;

  constructor(dataDir: string, minFreeBytes: number, ping: () => Promise<void>, logger: Logger) {
    this.#dataDir = dataDir;
    this.#minFreeBytes = minFreeBytes;
    this.#ping = ping;
    this.#log = logger;
  }

  mayWork(): boolean {
    return this.#disk === undefined && this.#store === undefined;
  }

  checks(): { readonly dataDir: boolean; readonly store: boolean } {
    return { dataDir: this.#disk === undefined, store: this.#store === undefined };
  }

  /** Checks free space and a write in the data directory, and that the database answers. */
  async check(): Promise<void> {
    this.#setDisk(await diskProblem(this.#dataDir, this.#minFreeBytes));
    this.storeHealth(
      await this.#ping().then(
        () => undefined,
        (error: unknown) => error ?? new Error("the database did not answer"),
      ),
    );
  }

  /** The database failed (an error) or answered again (undefined). */
  storeHealth(error: unknown): void {
    const problem = error === undefined ? undefined : error instanceof Error ? error.message : String(error);
    if (problem !== undefined && this.#store === undefined) {
      this.#log.error({ problem }, "the database does not answer: work is paused");
    } else if (problem === undefined && this.#store !== undefined) {
      this.#log.info("the database answers again: work resumes");
    }
    this.#store = problem;
  }

  #setDisk(problem: string | undefined): void {
    if (problem !== undefined && this.#disk === undefined) {
      this.#log.error(
        { dataDir: this.#dataDir, problem },
        "the data directory cannot take writes: work is paused",
      );
    } else if (problem === undefined && this.#disk !== undefined) {
      this.#log.info({ dataDir: this.#dataDir }, "the data directory takes writes again: work resumes");
    }
    this.#disk = problem;
  }
}

async function diskProblem(dataDir: string, minFreeBytes: number): Promise<string | undefined> {
  try {
    const stats = await statfs(dataDir);
    const free = stats.bavail * stats.bsize;
    if (free < minFreeBytes) {
      return `only ${Math.round(free / 1048576)} MiB free, under the ${Math.round(minFreeBytes / 1048576)} MiB the runner keeps`;
    }
    const probe = path.join(dataDir, `.write-probe-${randomUUID()}`);
    await writeFile(probe, "ok", { flush: true });
    await rm(probe, { force: true });
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
