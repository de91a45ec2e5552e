import { rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { checkPage, openTab, type Tab, useBrowser } from "./support/browser.ts";
import { dataDir, heldAppSource, TestRepo } from "./support/repo.ts";
import { READ_TOKEN, type Served, startServe, WRITE_TOKEN, writeServeConfig } from "./support/serve.ts";

/** The dashboard in a real browser (Debian's Chromium through playwright-core), on the real serve. */

const browser = useBrowser();
const WAIT = { timeout: 90_000, interval: 250 };

async function serveRepo(repo: TestRepo, config: Record<string, unknown> = {}): Promise<Served> {
  const data = await dataDir();
  return startServe(
    await writeServeConfig(data, { repository: { url: repo.dir }, pollIntervalSeconds: 3600, ...config }),
  );
}

async function signIn(tab: Tab, served: Served, token: string, path = "/"): Promise<void> {
  await tab.page.goto(new URL(path, served.url).href);
  await expect.poll(() => new URL(tab.page.url()).pathname).toBe("/sign-in");
  await tab.page.getByLabel("API token").fill(token);
  await tab.page.getByRole("button", { name: "Sign in" }).click();
  await tab.page.waitForURL((url) => url.pathname !== "/sign-in");
}

/** A page on another site (localhost, where the runner is 127.0.0.1) that links to `href`. */
async function linkingSite(href: string): Promise<string> {
  const server = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    response.end(`<!doctype html><title>A pull request</title><a href="${href}">the run</a>`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return `http://localhost:${port}/`;
}

async function stateOf(served: Served, stack: string): Promise<string> {
  return (await served.json(`/api/stacks/${stack}`)).state;
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).textContent()) ?? "").trim();
}

describe("the dashboard", () => {
  it("signs in, finds the demo stack, opens its run and sees its plan; every page is accessible", async () => {
    const served = await serveRepo(await TestRepo.fromExample("demo"));
    await vi.waitFor(async () => expect(await stateOf(served, "demo")).toBe("in-sync"), WAIT);
    const tab = await openTab(browser());
    const { page } = tab;

    await page.goto(new URL("/", served.url).href);
    expect(new URL(page.url()).pathname).toBe("/sign-in");
    await checkPage(tab, "sign-in");
    await page.getByLabel("API token").fill("not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => text(page, "[role=alert]")).toContain("not valid");
    // The refused sign-in's page came with 401, which the console reports.
    expect(tab.problems.splice(0)).toEqual([expect.stringContaining("401 (Unauthorized)")]);

    await page.getByLabel("API token").fill(WRITE_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL((url) => url.pathname === "/");
    const row = page.getByRole("row", { name: /demo/ });
    await expect.poll(() => row.textContent()).toMatch(/demo\s*in-sync/);
    await checkPage(tab, "overview", { docs: "dashboard-overview.png" });

    // Searching filters the list in place.
    await page.getByLabel("Search by name").fill("nothing-like-it");
    await expect.poll(() => text(page, "#stacks")).toContain("No stack matches.");
    expect(new URL(page.url()).searchParams.get("q")).toBe("nothing-like-it");
    await page.getByLabel("Search by name").fill("dem");
    await expect.poll(() => row.count()).toBe(1);

    await row.getByRole("link", { name: "demo" }).click();
    await page.waitForURL((url) => url.pathname === "/stacks/demo");
    await expect.poll(() => text(page, "h1")).toBe("demo");
    expect(await text(page, "#policy + dl")).toContain("defaults (no policy file)");
    await checkPage(tab, "stack");

    await page.locator(".timeline .run-link", { hasText: "apply" }).first().click();
    await page.waitForURL((url) => url.pathname.startsWith("/runs/"));
    const plan = page.locator("ul.plan");
    await expect.poll(() => plan.textContent()).toContain("terraform_data.release");
    expect(await plan.textContent()).toMatch(/create\s*terraform_data\.settings/);
    expect(await plan.textContent()).toContain('"stable"');
    expect(await text(page, "table.steps")).toMatch(/apply\s*succeeded/);
    expect(await text(page, "#log")).toContain("Apply complete!");
    await checkPage(tab, "run", { docs: "dashboard-run.png" });

    for (const [name, route] of [
      ["queue", "/queue"],
      ["graph", "/graph"],
      ["confirm-apply", "/stacks/demo/confirm/apply"],
    ] as const) {
      await page.goto(new URL(route, served.url).href);
      await checkPage(tab, name);
    }

    const phone = await openTab(browser(), { width: 390, height: 844 });
    await phone.context.addCookies(await tab.context.cookies());
    await phone.page.goto(new URL("/", served.url).href);
    await expect.poll(() => phone.page.getByRole("link", { name: "demo" }).isVisible()).toBe(true);
    const overflow = await phone.page.evaluate("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    await checkPage(phone, "overview-phone");
    await phone.page.goto(new URL("/stacks/demo", served.url).href);
    await checkPage(phone, "stack-phone");
    expect(await served.stop()).toBe(0);
  });

  it("follows a running run's log as it grows, and shows how it ended", async () => {
    const repo = await TestRepo.create({ web: { service: { input: { replicas: 1 } } } });
    const data = await dataDir();
    const hold = path.join(data, "hold");
    await writeFile(hold, "");
    await repo.write("main.ts", heldAppSource({ stack: "web", hold, ticks: path.join(data, "ticks") }));
    await repo.commit("Apply web slowly");
    const served = await startServe(
      await writeServeConfig(data, { repository: { url: repo.dir }, pollIntervalSeconds: 3600 }),
    );
    const running = await vi.waitFor(async () => {
      const { runs } = await served.json("/api/runs?kind=apply&status=running");
      expect(runs[0]?.steps?.at(-1)?.name).toBe("apply");
      return runs[0].id as string;
    }, WAIT);

    const tab = await openTab(browser());
    await signIn(tab, served, READ_TOKEN, `/runs/${running}`);
    const { page } = tab;
    await expect.poll(() => text(page, "#run-status")).toBe("running");
    const ticks = async () => Number(/tick (\d+)\s*$/.exec(await text(page, "#log"))?.[1] ?? 0);
    const first = await vi.waitFor(async () => {
      const seen = await ticks();
      expect(seen).toBeGreaterThan(0);
      return seen;
    }, WAIT);
    await vi.waitFor(async () => expect(await ticks()).toBeGreaterThan(first + 5), WAIT);
    await checkPage(tab, "run-live");

    await rm(hold);
    await vi.waitFor(async () => expect(await text(page, "#run-status")).toBe("succeeded"), WAIT);
    expect(await text(page, "#log")).toContain("Apply complete!");
    expect(await served.stop()).toBe(0);
  });

  it("approves a blocked run after showing the plan it will apply", async () => {
    const repo = await TestRepo.create({ web: { service: { input: { replicas: 1 } } } });
    await repo.write("gitops-runner.policy.json", JSON.stringify({ web: { autoApply: false } }));
    await repo.commit("Approve applies of web by hand");
    const served = await serveRepo(repo);
    await vi.waitFor(async () => expect(await stateOf(served, "web")).toBe("blocked"), WAIT);
    const [blocked] = (await served.json("/api/runs?kind=apply&status=blocked")).runs;

    const tab = await openTab(browser());
    await signIn(tab, served, WRITE_TOKEN, `/runs/${blocked.id}`);
    const { page } = tab;
    await page.getByRole("link", { name: "Review and approve…" }).click();
    await expect.poll(() => text(page, ".confirm")).toMatch(/create\s+terraform_data\.service/);
    await checkPage(tab, "confirm-approve");
    await page.getByRole("button", { name: "Approve and apply" }).click();
    await page.waitForURL((url) => url.searchParams.get("notice") === "approved");
    expect(await text(page, "[role=status]")).toContain("Approved");
    await vi.waitFor(async () => expect(await stateOf(served, "web")).toBe("in-sync"), WAIT);
    // The audit trail names the token the session was opened with.
    const { entries } = await served.json("/api/audit?stack=web");
    expect(entries[0]).toMatchObject({
      result: "applied",
      origin: { tokenName: "GITOPS_RUNNER_API_TOKEN#1" },
    });
    expect(await served.stop()).toBe(0);
  });

  it("suspends and resumes a stack, and a read session gets no action; without a session only the sign-in page", async () => {
    const served = await serveRepo(await TestRepo.fromExample("demo"));
    await vi.waitFor(async () => expect(await stateOf(served, "demo")).toBe("in-sync"), WAIT);

    const writer = await openTab(browser());
    await signIn(writer, served, WRITE_TOKEN, "/stacks/demo");
    const { page } = writer;
    await page.getByLabel("Reason").fill("incident 42");
    await page.getByRole("button", { name: "Suspend" }).click();
    await page.waitForURL((url) => url.searchParams.get("notice") === "suspended");
    expect(await text(page, ".title-row")).toContain("suspended");
    expect(await text(page, "#policy + dl")).toContain("incident 42");
    expect(await stateOf(served, "demo")).toBe("suspended");
    await page.getByRole("button", { name: "Resume" }).click();
    await page.waitForURL((url) => url.searchParams.get("notice") === "resumed");
    expect(await text(page, ".title-row")).toContain("in-sync");
    expect(await stateOf(served, "demo")).toBe("in-sync");

    // Freezing from the queue page shows a banner on every page, and unfreezing asks first.
    await page.goto(new URL("/queue", served.url).href);
    await page.getByLabel("Reason").fill("release week");
    await page.getByRole("button", { name: "Freeze applies" }).click();
    await page.waitForURL((url) => url.searchParams.get("notice") === "frozen");
    await page.goto(new URL("/", served.url).href);
    expect(await text(page, ".banner")).toMatch(/Applies are frozen\.\s+release week/);
    await checkPage(writer, "overview-frozen");
    expect((await served.json("/api/freeze")).open).toBe(false);
    await page.getByRole("link", { name: "Unfreeze…" }).click();
    await expect.poll(() => text(page, ".confirm")).toContain("Nothing is waiting.");
    await checkPage(writer, "confirm-unfreeze");
    await page.getByRole("button", { name: "Unfreeze" }).click();
    await page.waitForURL((url) => url.searchParams.get("notice") === "unfrozen");
    expect((await served.json("/api/freeze")).open).toBe(true);

    // A link from another site (a pull request's comment) opens the page for a signed-in person,
    // though their SameSite=Strict cookie does not come with the first request.
    const [applied] = (await served.json("/api/runs?kind=apply")).runs;
    const elsewhere = await linkingSite(new URL(`/runs/${applied.id}`, served.url).href);
    await page.goto(elsewhere);
    await page.getByRole("link", { name: "the run" }).click();
    await page.waitForURL((url) => url.pathname === `/runs/${applied.id}`);
    await expect.poll(() => text(page, "h1")).toBe("apply of demo");

    const reader = await openTab(browser());
    await signIn(reader, served, READ_TOKEN, "/stacks/demo");
    expect(await reader.page.locator(".actions").count()).toBe(0);
    expect(await reader.page.getByRole("button", { name: /Plan|Apply|Suspend|Resume/ }).count()).toBe(0);
    expect(await text(reader.page, ".access")).toBe("Read only");
    await reader.page.goto(new URL("/queue", served.url).href);
    expect(await reader.page.locator("form[action='/freeze']").count()).toBe(0);
    // A read session's post is refused even with a valid form.
    const refused = await reader.page.request.post(new URL("/stacks/demo/suspend", served.url).href, {
      form: { _csrf: "anything" },
      headers: { accept: "text/html" },
    });
    expect(refused.status()).toBe(403);
    expect(await stateOf(served, "demo")).toBe("in-sync");
    // A write session's post without the page's CSRF token is refused too.
    const forged = await page.request.post(new URL("/stacks/demo/suspend", served.url).href, {
      form: { _csrf: "forged" },
      headers: { accept: "text/html" },
    });
    expect(forged.status()).toBe(403);
    expect(await stateOf(served, "demo")).toBe("in-sync");

    const stranger = await openTab(browser());
    for (const route of [
      "/",
      "/stacks/demo",
      "/queue",
      "/graph",
      "/runs/anything",
      "/stacks/demo/confirm/apply",
    ]) {
      const response = await stranger.page.goto(new URL(route, served.url).href);
      expect(new URL(stranger.page.url()).pathname, route).toBe("/sign-in");
      expect(response?.status(), route).toBe(200);
      expect(await stranger.page.locator("nav").count()).toBe(0);
    }
    const posted = await stranger.page.request.post(new URL("/stacks/demo/apply", served.url).href, {
      form: { _csrf: "x" },
      maxRedirects: 0,
    });
    expect(posted.status()).toBe(403);
    expect(await served.stop()).toBe(0);
  });
});
