/**
 * Runs an app's TypeScript policy checks, in the synthesis sandbox (the checks
 * are code from the watched repository). Self-contained: only this file is
 * shown to the sandbox. Usage: node check-host.mts REQUEST.json, where the
 * request names the plan's JSON file, the stack, the check files and the file
 * to write the results to (stdout is left to the checks' own logging).
 * A check is a module whose default export takes the plan's JSON and
 * `{ stack }`, and returns (or resolves to) an array of violations
 * `{ address?, message, approvable? }`.
 */
import { readFile, writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";

interface Request {
  readonly plan: string;
  readonly stack: string;
  readonly checks: readonly string[];
  readonly out: string;
}

const requestFile = process.argv[2];
if (requestFile === undefined) throw new Error("usage: check-host.mts REQUEST.json");
const request = JSON.parse(await readFile(requestFile, "utf8")) as Request;
const planText = await readFile(request.plan, "utf8");
const results: unknown[] = [];
for (const file of request.checks) {
  try {
    const loaded = (await import(pathToFileURL(file).href)) as { default?: unknown };
    const check = loaded.default;
    if (typeof check !== "function") throw new TypeError("its default export is not a function");
    // Each check gets its own copy: one cannot change what the next one sees.
    const violations: unknown = await check(JSON.parse(planText), { stack: request.stack });
    results.push({ file, violations });
  } catch (error) {
    results.push({ file, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
  }
}
await writeFile(request.out, JSON.stringify({ results }));
