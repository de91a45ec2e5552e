/**
 * The pull-request comments, checked against golden files in
 * test/golden/comments/*.md, compared exactly. A split comment's parts are kept
 * in one file, separated by PART_SEPARATOR. After an intended change to the
 * rendering, rewrite the goldens and review their diff like code:
 *
 *   UPDATE_GOLDEN=1 bash scripts/run.sh npx vitest run test/comment.test.ts
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { compareWithReviewed } from "../src/domain/review.ts";
import type { CommandReport, ResourceReport, StackReport } from "../src/engine/report.ts";
import { EMPTY_SUMMARY } from "../src/engine/report.ts";
import { renderApplyComment } from "../src/service/comments/apply-comment.ts";
import { commentMarkers } from "../src/service/comments/markers.ts";
import { type PlanCommentInput, renderPlanComment } from "../src/service/comments/plan-comment.ts";
import { statusDescription } from "../src/service/comments/status.ts";

const { plan: COMMENT_MARKER, apply: APPLY_MARKER } = commentMarkers();

const GOLDEN_DIR = path.join(import.meta.dirname, "golden", "comments");
const PART_SEPARATOR = "\n\n<!-- ======== next comment ======== -->\n\n";
const GITHUB_LIMIT = 65_536;

const HEAD = "4f7c2a9e1b3d5f60718293a4b5c6d7e8f9012345";
const BASE = "9a8b7c6d5e4f30211203f4e5d6c7b8a990817263";
const APPLIED = "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";

const runUrl = (runId: string) => `https://runner.example.com/runs/${runId}`;

async function expectGolden(name: string, parts: readonly string[]): Promise<void> {
  const file = path.join(GOLDEN_DIR, `${name}.md`);
  const text = `${parts.join(PART_SEPARATOR)}\n`;
  if (process.env.UPDATE_GOLDEN === "1") {
    await mkdir(GOLDEN_DIR, { recursive: true });
    await writeFile(file, text);
    return;
  }
  const golden = await readFile(file, "utf8").catch(() => {
    throw new Error(`${file} is missing: run the test with UPDATE_GOLDEN=1 and review the file`);
  });
  expect(text).toBe(golden);
}

/**
 * Fences close in order and <details> tags (outside fences) pair up; fences
 * inside a blockquote count too.
 */
function expectBalanced(body: string): void {
  let fence: string | undefined;
  let details = 0;
  for (const line of body.split("\n")) {
    const text = line.replace(/^> ?/, "");
    if (fence !== undefined) {
      if (new RegExp(`^${fence}\`*\\s*$`).test(text)) fence = undefined;
      continue;
    }
    const opening = /^(`{3,})/.exec(text);
    if (opening?.[1] !== undefined) {
      fence = opening[1];
      continue;
    }
    details += (text.match(/<details[ >]/g) ?? []).length;
    details -= (text.match(/<\/details>/g) ?? []).length;
    expect(details, `</details> before <details> in: ${line}`).toBeGreaterThanOrEqual(0);
  }
  expect(fence, "a fence is left open").toBeUndefined();
  expect(details, "a <details> is left open").toBe(0);
}

function expectValidParts(parts: readonly string[], maxLength: number): void {
  parts.forEach((part, index) => {
    expect(part.length).toBeLessThanOrEqual(maxLength);
    expect(part.startsWith(COMMENT_MARKER)).toBe(true);
    if (parts.length > 1) expect(part).toContain(`Part ${index + 1} of ${parts.length}`);
    expectBalanced(part);
  });
}

/** The cells of the table row whose first cell names `stack` (as text or as a link), padding trimmed. */
function row(comment: string, stack: string): string[] | undefined {
  for (const line of comment.split("\n")) {
    if (!line.startsWith("| ")) continue;
    const cells = line
      .slice(2, -2)
      .split(/(?<!\\)\|/)
      .map((cell) => cell.trim());
    if (cells[0] === stack || cells[0]?.startsWith(`[${stack}](`)) return cells;
  }
  return undefined;
}

function summary(add: number, change: number, destroy: number, replace = 0) {
  return { add, change, destroy, replace, import: 0 };
}

const NETWORK_CHANGES = `  # aws_route_table.private will be updated in-place
  ~ resource "aws_route_table" "private" {
        id               = "rtb-0a1b2c3d4e5f60718"
      ~ tags             = {
          ~ "Name" = "private" -> "private-a"
        }
        # (5 unchanged attributes hidden)
    }

  # aws_subnet.private_b will be created
  + resource "aws_subnet" "private_b" {
      + arn               = (known after apply)
      + availability_zone = "eu-west-1b"
      + cidr_block        = "10.0.2.0/24"
      + id                = (known after apply)
      + vpc_id            = "vpc-0f1e2d3c4b5a69788"
    }

Plan: 1 to add, 1 to change, 0 to destroy.
`;

const STORAGE_CHANGES = `  # aws_s3_bucket.logs must be replaced
-/+ resource "aws_s3_bucket" "logs" {
      ~ arn    = "arn:aws:s3:::acme-logs" -> (known after apply)
      ~ bucket = "acme-logs" -> "acme-logs-eu" # forces replacement
      ~ id     = "acme-logs" -> (known after apply)
        tags   = {}
    }

  # aws_s3_bucket_policy.logs will be created
  + resource "aws_s3_bucket_policy" "logs" {
      + bucket = (known after apply)
      + id     = (known after apply)
      + policy = (sensitive)
    }

Plan: 2 to add, 0 to change, 1 to destroy.
`;

const NETWORK: StackReport = {
  name: "network",
  commit: HEAD,
  status: "changes",
  summary: summary(1, 1, 0),
  resources: [
    { address: "aws_route_table.private", actions: ["update"] },
    { address: "aws_subnet.private_b", actions: ["create"] },
  ],
  runId: "run-101",
};

const STORAGE: StackReport = {
  name: "storage",
  commit: HEAD,
  status: "changes",
  summary: summary(2, 0, 1, 1),
  resources: [
    { address: "aws_s3_bucket.logs", actions: ["delete", "create"] },
    { address: "aws_s3_bucket_policy.logs", actions: ["create"] },
  ],
  runId: "run-102",
};

const UNAFFECTED: StackReport = {
  name: "dns",
  commit: HEAD,
  status: "skipped",
  reason: `unchanged since ${BASE}`,
  summary: EMPTY_SUMMARY,
  resources: [],
  runId: null,
};

function unchanged(name: string, runId: string): StackReport {
  return { name, commit: HEAD, status: "no-changes", summary: EMPTY_SUMMARY, resources: [], runId };
}

describe("renderPlanComment", () => {
  it("says so when no stack changes", async () => {
    const report: CommandReport = {
      commit: HEAD,
      stacks: [unchanged("network", "run-1"), unchanged("storage", "run-2"), UNAFFECTED],
    };
    const parts = renderPlanComment(
      {
        report,
        headSha: HEAD,
        baseSha: BASE,
        details: [
          { name: "network", changes: "" },
          { name: "storage", changes: "" },
        ],
      },
      GITHUB_LIMIT,
    );
    expect(parts).toHaveLength(1);
    expectValidParts(parts, GITHUB_LIMIT);
    expect(parts[0]).not.toContain("<details>");
    await expectGolden("no-changes", parts);
  });

  it("lists the changes of two stacks, one with a replacement, with links to the runs", async () => {
    const report: CommandReport = { commit: HEAD, stacks: [NETWORK, STORAGE, UNAFFECTED] };
    const parts = renderPlanComment(
      {
        report,
        headSha: HEAD,
        baseSha: BASE,
        details: [
          { name: "network", changes: NETWORK_CHANGES },
          { name: "storage", changes: STORAGE_CHANGES },
        ],
        runUrl,
        widened: [
          { stack: "storage", field: "allowDestroy", from: "false", to: "true" },
          { stack: "storage", field: "drift", from: "notify", to: "correct" },
        ],
      },
      GITHUB_LIMIT,
    );
    expect(parts).toHaveLength(1);
    expectValidParts(parts, GITHUB_LIMIT);
    const [comment = ""] = parts;
    expect(row(comment, "storage")?.slice(1)).toEqual(["2 (1 replace)", "0", "1 (1 replace)", "changes"]);
    expect(comment).toContain("`aws_s3_bucket.logs` will be replaced (delete, create)");
    expect(comment).toContain("Not affected: dns (unchanged since 9a8b7c6).");
    expect(comment).toContain("[network](https://runner.example.com/runs/run-101)");
    expect(comment).toContain("+       policy = (sensitive)");
    // The policy change is the first thing a reviewer reads.
    expect(comment.split("\n")[3]).toBe(
      "> **This pull request widens the policy:** storage: `allowDestroy` false → true; storage: `drift` notify → correct. The policy of the commit being applied governs, so these apply to this change's own merge.",
    );
    await expectGolden("changes-two-stacks", parts);
  });

  it("reports an app that fails to synthesize with a notice, not a pseudo-stack", async () => {
    // Synthesis fails before any stack is known: the runner has no stacks to report.
    const message = [
      "cdktf app exited with code 1 (npx ts-node main.ts)",
      "main.ts(12,23): error TS2307: Cannot find module './constructs/bucket' or its corresponding type declarations.",
      "    at createTSError (node_modules/ts-node/src/index.ts:859:12)",
    ].join("\n");
    const parts = renderPlanComment(
      {
        report: { commit: HEAD, stacks: [] },
        headSha: HEAD,
        details: [],
        notices: [`The app failed to synthesize: ${message}`],
      },
      GITHUB_LIMIT,
    );
    expectValidParts(parts, GITHUB_LIMIT);
    expect(parts[0]).toContain("No stack was planned.");
    expect(parts[0]).not.toContain("| Stack ");
    await expectGolden("synth-failed", parts);
  });

  it("shows a failed stack's error, the stack skipped for it, and a provisional plan", async () => {
    const report: CommandReport = {
      commit: HEAD,
      stacks: [
        {
          name: "network",
          commit: HEAD,
          status: "failed",
          summary: EMPTY_SUMMARY,
          resources: [],
          runId: "run-201",
          error: {
            code: "TERRAFORM_FAILED",
            message: [
              "terraform plan failed in stack network:",
              "Error: Reference to undeclared resource",
              "",
              "  on cdk.tf.json line 57, in resource.aws_route.nat:",
              '  57:         "nat_gateway_id": "${aws_nat_gateway.main.id}"',
              "",
              'A managed resource "aws_nat_gateway" "main" has not been declared in the root module.',
            ].join("\n"),
          },
        },
        {
          name: "app",
          commit: HEAD,
          status: "skipped",
          reason: "dependency network failed",
          skippedForFailure: true,
          summary: EMPTY_SUMMARY,
          resources: [],
          runId: null,
        },
        {
          name: "queue",
          commit: HEAD,
          status: "pending",
          provisional: true,
          reason: "waits for the producer's apply (storage)",
          summary: EMPTY_SUMMARY,
          resources: [],
          runId: "run-203",
          error: {
            code: "TERRAFORM_FAILED",
            message:
              'Error: Unsupported attribute: This object does not have an attribute named "bucket_arn".',
          },
        },
        STORAGE,
      ],
    };
    const parts = renderPlanComment(
      {
        report,
        headSha: HEAD,
        baseSha: BASE,
        details: [{ name: "storage", changes: STORAGE_CHANGES }],
        runUrl,
      },
      GITHUB_LIMIT,
    );
    expectValidParts(parts, GITHUB_LIMIT);
    const [comment = ""] = parts;
    expect(row(comment, "app")).toEqual(["app", "—", "—", "—", "skipped — dependency network failed"]);
    expect(row(comment, "queue")?.[4]).toBe("pending — waits for the producer's apply");
    expect(comment).toContain("Error `TERRAFORM_FAILED`:");
    await expectGolden("stack-failed", parts);
  });

  it("marks a destroying plan that needs approval, and a stale branch", async () => {
    const database: StackReport = {
      name: "database",
      commit: HEAD,
      status: "changes",
      wouldBlock: true,
      summary: summary(1, 0, 1, 1),
      resources: [{ address: "aws_db_instance.main", actions: ["create", "delete"] }],
      runId: "run-301",
    };
    const app: StackReport = {
      name: "app",
      commit: HEAD,
      status: "changes",
      provisional: true,
      summary: summary(0, 1, 0),
      resources: [{ address: "aws_ecs_service.api", actions: ["update"] }],
      runId: "run-302",
    };
    const parts = renderPlanComment(
      {
        report: { commit: HEAD, stacks: [database, app] },
        headSha: HEAD,
        baseSha: BASE,
        details: [
          {
            name: "database",
            changes: `  # aws_db_instance.main must be replaced
+/- resource "aws_db_instance" "main" {
      ~ engine_version = "15.6" -> "16.2" # forces replacement
      ~ id             = "db-main" -> (known after apply)
        password       = (sensitive value)
    }

Plan: 1 to add, 0 to change, 1 to destroy.`,
          },
          {
            name: "app",
            changes: `  # aws_ecs_service.api will be updated in-place
  ~ resource "aws_ecs_service" "api" {
      ~ task_definition = "api:41" -> (known after apply)
    }

Plan: 0 to add, 1 to change, 0 to destroy.`,
          },
        ],
        stale: ["database"],
      },
      GITHUB_LIMIT,
    );
    expectValidParts(parts, GITHUB_LIMIT);
    const [comment = ""] = parts;
    expect(row(comment, "database")?.[4]).toBe("changes — needs approval to destroy");
    expect(row(comment, "app")?.[4]).toBe("changes — waits for the producer's apply");
    expect(comment).toContain("`aws_db_instance.main` will be replaced (create, delete)");
    expect(comment).toContain("**Stale:**");
    await expectGolden("would-block", parts);
  });

  it("splits a large plan between stacks, and inside a stack too long for one comment", async () => {
    const maxLength = 4000;
    const stacks: StackReport[] = [];
    const details: { name: string; changes: string }[] = [];
    const addStack = (name: string, count: number) => {
      const resources: ResourceReport[] = Array.from({ length: count }, (_, index) => ({
        address: `aws_sqs_queue.${name}_${String(index).padStart(3, "0")}`,
        actions: ["create"],
      }));
      stacks.push({
        name,
        commit: HEAD,
        status: "changes",
        summary: summary(count, 0, 0),
        resources,
        runId: `run-${name}`,
      });
      const blocks = resources.map(
        (resource) =>
          `  # ${resource.address} will be created\n  + resource "aws_sqs_queue" "${resource.address.split(".")[1]}" {\n      + name = "${name}"\n    }`,
      );
      details.push({
        name,
        changes: `${blocks.join("\n\n")}\n\nPlan: ${count} to add, 0 to change, 0 to destroy.`,
      });
    };
    addStack("orders", 4);
    addStack("billing", 5);
    addStack("events", 60);
    addStack("search", 3);

    const parts = renderPlanComment(
      { report: { commit: HEAD, stacks }, headSha: HEAD, details, runUrl },
      maxLength,
    );
    expect(parts.length).toBeGreaterThan(2);
    expectValidParts(parts, maxLength);
    const all = parts.join("\n");
    for (const stack of stacks) {
      for (const resource of stack.resources) expect(all).toContain(`# ${resource.address} will be created`);
    }
    // The long stack continues in a later part, its fence and <details> reopened.
    expect(
      parts.slice(1).some((part) => part.includes("<details><summary>events (continued)</summary>")),
    ).toBe(true);
    await expectGolden("split", parts);
  });

  it("stays within the limit when a single line is longer than a comment", () => {
    const maxLength = 1500;
    const line = `      + policy = "${"x".repeat(5000)}"`;
    const input: PlanCommentInput = {
      report: {
        commit: HEAD,
        stacks: [
          {
            name: "iam",
            commit: HEAD,
            status: "changes",
            summary: summary(1, 0, 0),
            resources: [{ address: "aws_iam_policy.wide", actions: ["create"] }],
            runId: "run-1",
          },
        ],
      },
      headSha: HEAD,
      details: [{ name: "iam", changes: line }],
    };
    const parts = renderPlanComment(input, maxLength);
    expect(parts.length).toBeGreaterThan(3);
    expectValidParts(parts, maxLength);
    expect(parts.join("").replace(/[^x]/g, "").length).toBeGreaterThanOrEqual(5000);
  });

  it("escapes pipes and backticks in table cells and code spans", () => {
    const parts = renderPlanComment(
      {
        report: {
          commit: HEAD,
          stacks: [
            { ...NETWORK, name: "a|b`c", resources: [{ address: 'x.y["a`b"]', actions: ["create"] }] },
          ],
        },
        headSha: HEAD,
        details: [],
      },
      GITHUB_LIMIT,
    );
    const [comment = ""] = parts;
    expect(row(comment, "a\\|b\\`c")).toEqual(["a\\|b\\`c", "1", "1", "0", "changes"]);
    expect(comment).toContain('- ``x.y["a`b"]`` will be created');
    expect(comment).toContain("<details><summary>a|b`c: +1 ~1 -0</summary>");
  });

  it("refuses a limit too small for any comment", () => {
    expect(() =>
      renderPlanComment({ report: { commit: HEAD, stacks: [] }, headSha: HEAD, details: [] }, 100),
    ).toThrow(RangeError);
  });
});

describe("statusDescription", () => {
  it("sums the changes and counts replacements", () => {
    expect(statusDescription({ commit: HEAD, stacks: [NETWORK, STORAGE, UNAFFECTED] })).toBe(
      "2 stacks: +3 ~1 -1 (1 replaced)",
    );
  });

  it("says no changes, and no stack affected", () => {
    expect(statusDescription({ commit: HEAD, stacks: [unchanged("network", "run-1"), UNAFFECTED] })).toBe(
      "1 stack: no changes",
    );
    expect(statusDescription({ commit: HEAD, stacks: [UNAFFECTED] })).toBe("no stack affected");
  });

  it("names what fails the check", () => {
    const failed: StackReport = {
      ...unchanged("network", "run-1"),
      status: "failed",
      error: { code: "TERRAFORM_FAILED", message: "boom" },
    };
    const skipped: StackReport = {
      ...UNAFFECTED,
      name: "app",
      reason: "dependency network failed",
      skippedForFailure: true,
    };
    const blocked: StackReport = { ...STORAGE, status: "blocked", reason: "destroys aws_s3_bucket.logs" };
    const wouldBlock: StackReport = { ...STORAGE, name: "database", wouldBlock: true };
    expect(statusDescription({ commit: HEAD, stacks: [failed, skipped, blocked, wouldBlock] })).toBe(
      "3 stacks: +4 ~0 -2 (2 replaced); 1 failed, 1 skipped (dependency failed), 1 blocked, 1 would block",
    );
  });

  it("never exceeds 140 characters", () => {
    const many = Array.from({ length: 2000 }, (_, index) => ({
      ...STORAGE,
      name: `s${index}`,
      summary: summary(123_456_789, 987_654_321, 555_555_555, 444_444_444),
      wouldBlock: true,
    }));
    expect(statusDescription({ commit: HEAD, stacks: many }).length).toBeLessThanOrEqual(140);
  });
});

describe("renderApplyComment", () => {
  const failedNetwork: StackReport = {
    name: "network",
    commit: APPLIED,
    status: "failed",
    summary: summary(1, 1, 0),
    resources: [],
    runId: "run-401",
    error: {
      code: "TERRAFORM_FAILED",
      message:
        "terraform apply failed in stack network:\nError: creating EC2 Subnet: InvalidSubnet.Conflict: The CIDR '10.0.2.0/24' conflicts with another subnet",
    },
  };
  const blockedStorage: StackReport = {
    ...STORAGE,
    commit: APPLIED,
    status: "blocked",
    reason: "the plan destroys aws_s3_bucket.logs and allowDestroy is false for storage",
    runId: "run-402",
  };

  it("tells what to do next for a failed stack", async () => {
    const comment = renderApplyComment({
      report: { commit: APPLIED, stacks: [failedNetwork, { ...UNAFFECTED, commit: APPLIED }] },
      mergeSha: APPLIED,
      runUrl,
    });
    expect(comment.startsWith(APPLY_MARKER)).toBe(true);
    expect(comment).toContain(
      "Next: fix the stack and push again, or re-run with `POST /api/stacks/network/apply`.",
    );
    expect(comment).toContain("[Run run-401](https://runner.example.com/runs/run-401)");
    expectBalanced(comment);
    await expectGolden("apply-failed", [comment]);
  });

  it("tells how to approve a blocked stack", () => {
    const comment = renderApplyComment({
      report: {
        commit: APPLIED,
        stacks: [{ ...NETWORK, commit: APPLIED, status: "applied" }, blockedStorage],
      },
      mergeSha: APPLIED,
    });
    expect(comment).toContain("**storage** is blocked: the plan destroys aws\\_s3\\_bucket.logs");
    expect(comment).toContain("Next: approve with `POST /api/runs/run-402/approve`");
    expect(row(comment, "network")).toEqual(["network", "1", "1", "0", "applied"]);
    expect(comment).toContain("**2 affected stacks**: 1 applied, 1 blocked.");
  });

  it("says when a newer commit was applied instead, and how the merge plan differs from the reviewed one", async () => {
    const differs = compareWithReviewed(
      [
        { address: "aws_s3_bucket.logs", actions: ["update"] },
        { address: "aws_s3_bucket_acl.logs", actions: ["delete"] },
      ],
      STORAGE.resources,
    );
    if (differs.kind !== "differs") throw new Error("the plans should differ");
    const comment = renderApplyComment({
      report: { commit: HEAD, stacks: [{ ...STORAGE, status: "applied" }] },
      mergeSha: APPLIED,
      coalescedInto: HEAD,
      review: [{ stack: "storage", comparison: differs }],
      runUrl,
    });
    expect(comment).toContain("### gitops-runner apply of `4f7c2a9`");
    expect(comment).toContain("the newer commit `4f7c2a9` was applied instead");
    expect(comment).toContain("differs from this pull request's last plan for storage");
    expect(comment).toContain(
      "`aws_s3_bucket.logs` will be replaced (delete, create); the reviewed plan said it will be updated in-place",
    );
    expect(comment).toContain(
      "`aws_s3_bucket_policy.logs` will be created; the reviewed plan did not change it",
    );
    expect(comment).toContain(
      "`aws_s3_bucket_acl.logs` is no longer changed; the reviewed plan said it will be destroyed",
    );
    expectBalanced(comment);
    await expectGolden("apply-coalesced", [comment]);
  });
});
