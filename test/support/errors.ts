import { isRunnerError } from "../../src/errors.ts";

/** The code and message of the error that `work` throws; fails when it throws none. */
export function errorOf(work: () => unknown): { code?: string; message: string } {
  try {
    work();
  } catch (error) {
    return { ...(isRunnerError(error) ? { code: error.code } : {}), message: (error as Error).message };
  }
  throw new Error("expected an error");
}

/** "CODE: message" of the RunnerError that `work` throws; fails when it throws none. */
export function refusal(work: () => unknown): string {
  const { code, message } = errorOf(work);
  return `${code}: ${message}`;
}
