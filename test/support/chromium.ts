import { type Browser, chromium } from "playwright-core";

/**
 * Debian's Chromium (GITOPS_RUNNER_TEST_CHROMIUM, which the set-up exports),
 * driven by playwright-core (which downloads nothing), headless, with a fresh
 * profile and no background traffic: this network has no way out, and
 * Chromium's own connections would only be refused.
 */
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function launchChromium(): Promise<Browser> {
  const executablePath = process.env.GITOPS_RUNNER_TEST_CHROMIUM;
  if (!executablePath)
    throw new Error(
      "GITOPS_RUNNER_TEST_CHROMIUM is not set: run through scripts/run.sh after `npm run setup`",
    );
  // Playwright starts Chromium with a fresh temporary --user-data-dir of its own.
  return chromium.launch({ executablePath, headless: true, args: FLAGS });
}
