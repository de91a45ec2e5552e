/**
 * The dashboard with many stacks and a long log, beside the same pages small,
 * on the real `serve` and in Debian's Chromium (playwright-core):
 *   overview  GET / with N stacks (200) beside 1 stack: server time (signed-in session, full body),
 *             HTML bytes, the browser's navigation-to-load time, and filtering by a search term;
 *   run       GET /runs/:id of an apply whose log has L lines (5,000) beside one with a short log:
 *             server time, bytes, browser load; and a running apply's log followed live: from a
 *             line the apply prints until it shows in the open page (Server-Sent Events).
 * Usage: node bench/dashboard.ts [--stacks N (200)] [--lines N (5000)] [--parallelism N (6)]
 *                                [--requests N (20)] [--loads N (10)]
 */
import { type FileHandle, open, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { launchChromium } from "../test/support/chromium.ts";
import { type Served, serveConfig, startServe, TOKEN, until } from "./served.ts";
import {
  appSource,
  baseEnv,
  commitAll,
  createRepo,
  engineBinary,
  generatedSpec,
  intFlags,
  median,
  out,
  printHeader,
  printTable,
  progress,
  run,
  runMain,
  stackName,
  tempRoot,
} from "./support.ts";

const USAGE =
  "usage: node bench/dashboard.ts [--stacks N (200)] [--lines N (5000)] [--parallelism N (6)] [--requests N (20)] [--loads N (10)]";
/** A search term that matches exactly one stack of any generated repository: the first. */
const TERM = stackName(0);

interface Flags {
  readonly stacks: number;
  readonly lines: number;
  readonly parallelism: number;
  readonly requests: number;
  readonly loads: number;
}

/** A served runner with a signed-in browser context and the session's cookie for plain requests. */
interface Twin {
  readonly name: string;
  readonly served: Served;
  readonly context: BrowserContext;
  readonly page: Page;
  readonly cookie: string;
}

// --- serve and the session -----------------------------------------------------------

async function serveRepo(root: string, name: string, repo: string, flags: Flags): Promise<Served> {
  const { config } = await serveConfig(root, name, repo, {
    // Nothing but the first apply: no new commits to look for, drift due an hour after it.
    pollIntervalSeconds: 3600,
    parallelism: flags.parallelism,
  });
  return startServe(["--config", config], { GITOPS_RUNNER_API_TOKEN: TOKEN });
}

/** Waits until serve's first apply has put `count` stacks in sync; progress as they come. */
async function firstApply(served: Served, count: number, what: string): Promise<number> {
  const started = performance.now();
  let reported = -1;
  for (;;) {
    const { stacks } = await served.json<{
      stacks: { name: string; state: string; lastAppliedCommit?: string }[];
    }>("/api/stacks");
    const failed = stacks.filter((stack) => stack.state === "failed");
    if (failed.length > 0) throw new Error(`${what}: ${failed.map((stack) => stack.name).join(", ")} failed`);
    // In sync and applied: the overview then shows every stack's last apply.
    const inSync = stacks.filter((stack) => stack.state === "in-sync" && stack.lastAppliedCommit).length;
    if (stacks.length === count && inSync === count) return performance.now() - started;
    if (inSync !== reported && (reported < 0 || inSync - reported >= 10 || count < 10)) {
      progress(
        `${what}: ${inSync}/${count} stacks in sync after ${((performance.now() - started) / 1000).toFixed(0)} s`,
      );
      reported = inSync;
    }
    if (performance.now() - started > 60 * 60_000) throw new Error(`${what}: not applied within an hour`);
    // Polling the API a few times a minute, not many times a second: the runner is busy applying.
    await delay(2000);
  }
}

/** Signs in through the sign-in page, as a person does; the session cookie for plain requests. */
async function signIn(browser: Browser, name: string, served: Served): Promise<Twin> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  await page.goto(new URL("/sign-in", served.url).href);
  await page.getByLabel("API token").fill(TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname !== "/sign-in");
  const cookie = (await context.cookies(served.url))
    .map((entry) => `${entry.name}=${entry.value}`)
    .join("; ");
  return { name, served, context, page, cookie };
}

// --- measurements --------------------------------------------------------------------------

interface Fetched {
  readonly ms: number;
  readonly bytes: number;
}

/** One GET of a page as a browser asks for it (the session cookie, Accept text/html), to its last byte. */
async function getPage(twin: Twin, route: string, expected: string): Promise<Fetched> {
  const started = performance.now();
  const response = await fetch(new URL(route, twin.served.url), {
    headers: { cookie: twin.cookie, accept: "text/html" },
  });
  const body = Buffer.from(await response.arrayBuffer());
  const ms = performance.now() - started;
  if (response.status !== 200) throw new Error(`${twin.name}: GET ${route} answered ${response.status}`);
  if (!body.toString("utf8").includes(expected))
    throw new Error(`${twin.name}: GET ${route} does not show "${expected}"`);
  return { ms, bytes: body.length };
}

/** Navigation to the load event, read from the page's own Navigation Timing. */
async function browserLoad(twin: Twin, route: string): Promise<number> {
  await twin.page.goto(new URL(route, twin.served.url).href, { waitUntil: "load" });
  const handle = await twin.page.waitForFunction(
    `(() => { const [entry] = performance.getEntriesByType("navigation"); return entry && entry.loadEventEnd > 0 ? entry.loadEventEnd - entry.startTime : false; })()`,
  );
  return Number(await handle.jsonValue());
}

/**
 * Types the search term into the overview's search (one input event, as a
 * paste) and times, in the page, from that event until htmx has put the
 * filtered list in place of the old one. htmx waits 250 ms after the last
 * input before it asks: that wait is in the figure.
 */
async function filterTime(twin: Twin, total: number): Promise<number> {
  await twin.page.goto(new URL("/", twin.served.url).href, { waitUntil: "load" });
  await twin.page.evaluate(`void (window.benchFiltered = new Promise((resolve, reject) => {
    const old = document.getElementById("stacks");
    let started;
    document.addEventListener("input", () => { started ??= performance.now(); }, { capture: true });
    const observer = new MutationObserver(() => {
      const list = document.getElementById("stacks");
      if (list && list !== old && list.textContent.includes("1 of ${total} stacks") && started !== undefined) {
        observer.disconnect();
        resolve(performance.now() - started);
      }
    });
    observer.observe(document.body, { childList: true, subtree: true });
    setTimeout(() => reject(new Error("the filtered list did not come within 30 s")), 30000);
  }))`);
  await twin.page.getByLabel("Search by name").fill(TERM);
  return Number(await twin.page.evaluate("window.benchFiltered"));
}

/** Measures each of the twins in turn, `samples` times, alternating which goes first; the samples per twin. */
async function sideBySide<I, T>(
  twins: readonly I[],
  samples: number,
  measure: (twin: I) => Promise<T>,
): Promise<T[][]> {
  const results: T[][] = twins.map(() => []);
  for (let sample = 0; sample < samples; sample++) {
    const order = twins.map((_, index) => (sample % 2 === 0 ? index : twins.length - 1 - index));
    for (const index of order) results[index]?.push(await measure(twins[index] as I));
  }
  return results;
}

const ms = (value: number) => value.toFixed(value < 10 ? 1 : 0);
const kb = (bytes: number) => (bytes / 1024).toFixed(1);
const verdict = (value: number, limit: number) => (value < limit ? "met" : "NOT met");

// --- overview ----------------------------------------------------------------------------

async function overview(root: string, browser: Browser, flags: Flags): Promise<void> {
  const serves: Served[] = [];
  const twins: (Twin & { readonly count: number })[] = [];
  const applied: number[] = [];
  try {
    for (const count of [1, flags.stacks]) {
      const name = count === 1 ? "1 stack" : `${count} stacks`;
      progress(`overview: a repository of ${name} (terraform_data), applied by serve at start`);
      const repo = path.join(root, `repo-${count}`);
      await createRepo(repo, generatedSpec(count, 1));
      const served = await serveRepo(root, `overview-${count}`, repo, flags);
      serves.push(served);
      applied.push(await firstApply(served, count, `overview, ${name}`));
      twins.push({ ...(await signIn(browser, name, served)), count });
    }
    progress(`overview: ${flags.requests} GET / per twin`);
    const fetched = await sideBySide(twins, flags.requests, (twin) =>
      getPage(twin, "/", `${twin.count} of ${twin.count} stacks`),
    );
    progress(`overview: ${flags.loads} browser loads per twin (after one that fills the cache)`);
    await sideBySide(twins, 1, (twin) => browserLoad(twin, "/"));
    const loads = await sideBySide(twins, flags.loads, (twin) => browserLoad(twin, "/"));
    progress(`overview: ${flags.loads} searches for "${TERM}" per twin`);
    const filters = await sideBySide(twins, flags.loads, (twin) => filterTime(twin, twin.count));

    const server = fetched.map((samples) => median(samples.map((sample) => sample.ms)));
    const bytes = fetched.map((samples) => samples[0]?.bytes ?? 0);
    const load = loads.map(median);
    const filter = filters.map(median);
    const big = twins[1]?.name ?? "";
    out(
      `\noverview (GET /) with ${big} beside 1 stack; medians of ${flags.requests} requests, ${flags.loads} loads, ${flags.loads} searches\n`,
    );
    printTable(
      ["", "1 stack", big, `target at ${big}`, ""],
      [
        [
          "serve's first apply, s (1 stack's with the dependency install)",
          ...applied.map((value) => (value / 1000).toFixed(0)),
          "-",
          "",
        ],
        ["GET / server time, ms", ...server.map(ms), "< 250 ms", verdict(server[1] ?? Number.NaN, 250)],
        ["GET / HTML, KB", ...bytes.map(kb), "-", ""],
        [
          "browser: navigation to load, ms",
          ...load.map(ms),
          "< 2000 ms",
          verdict(load[1] ?? Number.NaN, 2000),
        ],
        [
          `browser: search "${TERM}" to filtered list, ms`,
          ...filter.map(ms),
          "< 1000 ms",
          verdict(filter[1] ?? Number.NaN, 1000),
        ],
      ],
    );
  } finally {
    for (const twin of twins) await twin.context.close();
    for (const served of serves) await served.stop();
  }
}

// --- run pages ----------------------------------------------------------------------------

interface RunSummary {
  readonly id: string;
  readonly stack: string;
  readonly status: string;
  readonly steps?: readonly { readonly name: string }[];
}

async function runPages(root: string, browser: Browser, flags: Flags): Promise<void> {
  // Three stacks of one app: a short apply, an apply whose provisioner prints `lines` lines, and
  // one whose provisioner echoes what the benchmark writes into a FIFO until it writes "end".
  const fifo = path.join(root, "live.fifo");
  await run("mkfifo", [fifo], { cwd: root, env: baseEnv });
  const printer = `seq -f "line %g of a long apply log" 1 ${flags.lines}`;
  const follower = `while IFS= read -r line; do echo "$line"; [ "$line" = end ] && break; done < ${fifo}`;
  const repo = path.join(root, "repo-runs");
  await createRepo(repo, { short: { item: { size: 1 } } });
  await writeFile(
    path.join(repo, "main.ts"),
    appSource({ short: { item: { size: 1 } }, long: {}, live: {} }).replace(
      "app.synth();",
      [
        `new DataResource(s_long, "printer", { input: 1, provisioners: [{ type: "local-exec", command: ${JSON.stringify(printer)} }] });`,
        `new DataResource(s_live, "follower", { input: 1, provisioners: [{ type: "local-exec", command: ${JSON.stringify(follower)} }] });`,
        "app.synth();",
      ].join("\n"),
    ),
  );
  await commitAll(repo, "A long log and a live one");
  progress(`run pages: serve applies stacks short, long (${flags.lines} lines) and live (held on a FIFO)`);
  const served = await serveRepo(root, "runs", repo, flags);
  let twin: Twin | undefined;
  let writer: FileHandle | undefined;
  try {
    const runs = await until(
      "the applies of short and long to end, and live's to reach its apply step",
      async () => {
        const { runs } = await served.json<{ runs: RunSummary[] }>("/api/runs?kind=apply");
        const of = (stack: string) => runs.find((entry) => entry.stack === stack);
        for (const stack of ["short", "long"]) {
          if (of(stack)?.status === "failed") throw new Error(`the apply of ${stack} failed`);
        }
        const [short, long, live] = [of("short"), of("long"), of("live")];
        return short?.status === "succeeded" &&
          long?.status === "succeeded" &&
          live?.status === "running" &&
          live.steps?.at(-1)?.name === "apply"
          ? { short, long, live }
          : undefined;
      },
      30 * 60_000,
    );
    const lineCount = async (id: string) =>
      ((await served.json<{ log?: string }>(`/api/runs/${id}`)).log ?? "").split("\n").length - 1;
    const counts = [await lineCount(runs.short.id), await lineCount(runs.long.id)];
    twin = await signIn(browser, "runs", served);
    const pages = [
      { route: `/runs/${runs.short.id}`, expected: "Apply complete!" },
      { route: `/runs/${runs.long.id}`, expected: `line ${flags.lines} of a long apply log` },
    ];
    const signedIn = twin;
    progress(`run pages: ${flags.requests} GET /runs/:id per log`);
    const fetched = await sideBySide(pages, flags.requests, (page) =>
      getPage(signedIn, page.route, page.expected),
    );
    progress(`run pages: ${flags.loads} browser loads per log (after one that fills the cache)`);
    await sideBySide(pages, 1, (page) => browserLoad(signedIn, page.route));
    const loads = await sideBySide(pages, flags.loads, (page) => browserLoad(signedIn, page.route));

    progress(`run pages: following the live apply's log, ${flags.loads} lines`);
    // Opening the FIFO for writing waits for the provisioner to open it for reading.
    writer = await open(fifo, "w");
    const live = await followLive(twin, runs.live.id, writer, flags.loads);
    await writer.write("end\n");
    await until("the live apply to end", async () =>
      (await served.json<RunSummary>(`/api/runs/${runs.live.id}`)).status === "succeeded" ? true : undefined,
    );

    const server = fetched.map((samples) => median(samples.map((sample) => sample.ms)));
    const bytes = fetched.map((samples) => samples[0]?.bytes ?? 0);
    const load = loads.map(median);
    const columns = [`short log (${counts[0]} lines)`, `long log (${counts[1]} lines)`];
    out(
      `\na run's page (GET /runs/:id) with a long log beside a short one; medians of ${flags.requests} requests and ${flags.loads} loads\n`,
    );
    printTable(
      ["", ...columns, "target, long log", ""],
      [
        [
          "GET /runs/:id server time, ms",
          ...server.map(ms),
          "< 250 ms",
          verdict(server[1] ?? Number.NaN, 250),
        ],
        ["GET /runs/:id HTML, KB", ...bytes.map(kb), "-", ""],
        [
          "browser: navigation to load, ms",
          ...load.map(ms),
          "< 2000 ms",
          verdict(load[1] ?? Number.NaN, 2000),
        ],
      ],
    );
    out(
      `\na running apply's log followed live in its page: from a line the apply prints until the page shows it, ${live.length} lines one after another\n`,
    );
    printTable(
      ["", "median ms", "min", "max", "target", ""],
      [
        [
          "line printed -> shown (SSE)",
          ms(median(live)),
          ms(Math.min(...live)),
          ms(Math.max(...live)),
          "< 1000 ms",
          verdict(median(live), 1000),
        ],
      ],
    );
    out(
      "the page's stream reads the log from the store every 500 ms (src/http/pages/log-stream.ts); a line written\n" +
        "just after the page showed the one before meets that read at the same phase each time, so this is near its worst case\n",
    );
  } finally {
    // An apply still held on the FIFO ends when it closes.
    await writer?.close();
    await twin?.context.close();
    await served.stop();
  }
}

/**
 * Opens the running apply's page and, line after line, writes a line into the
 * FIFO its provisioner reads and echoes, and times from the write until the
 * page's log shows it (the page reports the moment of the DOM change).
 */
async function followLive(twin: Twin, id: string, fifo: FileHandle, samples: number): Promise<number[]> {
  const { page } = twin;
  await page.goto(new URL(`/runs/${id}`, twin.served.url).href, { waitUntil: "load" });
  /** Writes a line for the provisioner to print; ms until the page's log showed it (one clock: Date.now()). */
  const printAndWait = async (marker: string): Promise<number> => {
    await page.evaluate(`void (window.benchShown = new Promise((resolve, reject) => {
      const log = document.getElementById("log");
      const observer = new MutationObserver(() => {
        if (log.textContent.includes(${JSON.stringify(marker)})) {
          observer.disconnect();
          resolve(Date.now());
        }
      });
      observer.observe(log, { childList: true, characterData: true, subtree: true });
      setTimeout(() => reject(new Error("the line did not show within 60 s")), 60000);
    }))`);
    const sent = Date.now();
    await fifo.write(`${marker}\n`);
    return Number(await page.evaluate("window.benchShown")) - sent;
  };
  // The first line shows that the page's event stream is open; it is not counted.
  await printAndWait("mark-warm-up");
  const latencies: number[] = [];
  for (let sample = 0; sample < samples; sample++) {
    latencies.push(await printAndWait(`mark-${String(sample).padStart(3, "0")}`));
  }
  return latencies;
}

runMain(USAGE, async () => {
  const flags = intFlags(process.argv.slice(2), {
    stacks: 200,
    lines: 5000,
    parallelism: 6,
    requests: 20,
    loads: 10,
  });
  await printHeader(
    `dashboard: the overview with ${flags.stacks} stacks beside 1, a run page with a ${flags.lines}-line log beside a short one, a live log`,
    await engineBinary(),
    [
      "serve runs as `npm start` runs it (node runner/main.js); each repository's stacks are terraform_data,",
      `  applied once by serve itself at start (its first apply, parallelism ${flags.parallelism}) before anything is measured.`,
      "server time: GET with the signed-in session's cookie and Accept text/html, to the last byte, over loopback.",
      `browser: ${process.env.GITOPS_RUNNER_TEST_CHROMIUM ?? "chromium"} headless through playwright-core, 1280x860; load time is the`,
      "  page's Navigation Timing (navigation start to the end of the load event), assets cached by one load before.",
    ],
  );
  const root = await tempRoot("dashboard");
  const browser = await launchChromium();
  try {
    await overview(root.dir, browser, flags);
    await runPages(root.dir, browser, flags);
  } finally {
    await browser.close();
    await root.remove();
  }
});
