import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, expect } from "vitest";
import { launchChromium } from "./chromium.ts";
import { repoRoot } from "./toolchain.ts";

export const SCREENSHOTS = path.join(repoRoot, "test-output", "screenshots");

/** One browser for the test file, closed after it. */
export function useBrowser(): () => Browser {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(() => browser?.close());
  return () => {
    if (!browser) throw new Error("the browser did not start");
    return browser;
  };
}

export interface Tab {
  readonly page: Page;
  readonly context: BrowserContext;
  /** What the page reported as errors (a script error, a refused by the content security policy). */
  readonly problems: string[];
}

/** A fresh context (no cookies) and page, at laptop size unless told. */
export async function openTab(
  browser: Browser,
  viewport: { width: number; height: number } = { width: 1280, height: 860 },
): Promise<Tab> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(error.message));
  return { page, context, problems };
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

/**
 * Saves a screenshot of the page under test-output/screenshots (and, with
 * UPDATE_SCREENSHOTS=1, into docs/ when `docs` names a file there), and runs
 * axe-core on it: no serious or critical violation.
 */
export async function checkPage(
  tab: Tab,
  name: string,
  options: { readonly docs?: string } = {},
): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await tab.page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
  if (options.docs && process.env.UPDATE_SCREENSHOTS === "1") {
    await tab.page.screenshot({ path: path.join(repoRoot, "docs", options.docs), fullPage: false });
  }
  await tab.page.evaluate(axeSource);
  const violations = (await tab.page.evaluate(
    "axe.run(document, { resultTypes: ['violations'] }).then((result) => result.violations)",
  )) as AxeViolation[];
  const serious = violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map(
      (violation) =>
        `${violation.id} (${violation.impact}): ${violation.help} at ${JSON.stringify(violation.nodes.map((node) => node.target))}`,
    );
  expect(serious, `axe on ${name}`).toEqual([]);
  expect(tab.problems.splice(0), `errors on ${name}`).toEqual([]);
}
