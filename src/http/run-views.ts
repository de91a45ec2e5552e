import { RunnerError } from "../errors.ts";
import type { ServiceApi } from "../service/api.ts";
import type { RunRecord } from "../store/records.ts";

/** `{ url }` of a run's page when the public URL is known, else nothing. */
export type RunLinker = (runId: string) => { url?: string };

export function runLinker(publicUrl: string | undefined): RunLinker {
  if (publicUrl === undefined) return () => ({});
  const base = publicUrl.endsWith("/") ? publicUrl : `${publicUrl}/`;
  return (runId) => ({ url: new URL(`runs/${encodeURIComponent(runId)}`, base).href });
}

/** A run in a list: everything but the log and the plan, which can be large. */
export function listView(run: RunRecord): Omit<RunRecord, "log" | "plan"> {
  const { log: _log, plan: _plan, ...view } = run;
  return view;
}

/** The run with this id, or RUN_NOT_FOUND. */
export async function requireRun(service: Pick<ServiceApi, "getRun">, id: string): Promise<RunRecord> {
  const run = await service.getRun(id);
  if (run === undefined) throw new RunnerError("RUN_NOT_FOUND", `no run with id ${id}`);
  return run;
}
