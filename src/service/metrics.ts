import { Counter, Gauge, Histogram, Registry } from "prom-client";

export interface MetricSources {
  queueDepth(): Promise<number>;
  stacksDrifted(): Promise<number>;
  /** Seconds since the last successful poll, or undefined before the first. */
  secondsSinceLastPoll(): Promise<number | undefined>;
  /** The bytes the data directory takes. */
  dataDirBytes(): Promise<number>;
}

/** The service's Prometheus metrics; gauges are read from the store when scraped. */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly #runs: Counter<"kind" | "status">;
  readonly #durations: Histogram<"kind">;

  constructor(sources: MetricSources) {
    this.#runs = new Counter({
      name: "gitops_runner_runs_total",
      help: "Runs finished, by kind and status.",
      labelNames: ["kind", "status"],
      registers: [this.registry],
    });
    this.#durations = new Histogram({
      name: "gitops_runner_run_duration_seconds",
      help: "Duration of finished runs, by kind.",
      labelNames: ["kind"],
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [this.registry],
    });
    new Gauge({
      name: "gitops_runner_queue_depth",
      help: "Events waiting for a worker.",
      registers: [this.registry],
      async collect() {
        this.set(await sources.queueDepth());
      },
    });
    new Gauge({
      name: "gitops_runner_stacks_drifted",
      help: "Stacks whose last drift check found drift.",
      registers: [this.registry],
      async collect() {
        this.set(await sources.stacksDrifted());
      },
    });
    new Gauge({
      name: "gitops_runner_seconds_since_last_successful_poll",
      help: "Seconds since the repository was last fetched successfully (-1 before the first).",
      registers: [this.registry],
      async collect() {
        this.set((await sources.secondsSinceLastPoll()) ?? -1);
      },
    });
    new Gauge({
      name: "gitops_runner_data_dir_bytes",
      help: "Bytes the data directory takes (state, records, caches, work folders), measured at most every 30 s.",
      registers: [this.registry],
      async collect() {
        this.set(await sources.dataDirBytes());
      },
    });
  }

  runFinished(kind: string, status: string, durationMs: number): void {
    this.#runs.inc({ kind, status });
    this.#durations.observe({ kind }, durationMs / 1000);
  }
}
