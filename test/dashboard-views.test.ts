import { describe, expect, it } from "vitest";
import { layoutGraph, NODE_WIDTH } from "../src/http/pages/graph-layout.ts";
import { relative } from "../src/http/pages/layout.ts";
import { planView } from "../src/http/pages/plan-view.ts";

/** What the dashboard's pages are built from, from plain values. */

describe("a plan as people read it", () => {
  const change = (address: string, actions: string[], fields: Record<string, unknown>) => ({
    address,
    mode: "managed",
    type: "aws_s3_bucket",
    name: address.split(".")[1],
    change: { actions, ...fields },
  });

  it("marks each resource create, update, replace or destroy, with what changes before and after", () => {
    const plan = {
      resource_changes: [
        change("aws_s3_bucket.new", ["create"], {
          before: null,
          after: { bucket: "logs", tags: { env: "prod" }, password: "(sensitive)" },
          after_unknown: { arn: true },
        }),
        change("aws_s3_bucket.tagged", ["update"], {
          before: { bucket: "data", tags: { env: "dev", team: "a" } },
          after: { bucket: "data", tags: { env: "prod", team: "a" } },
        }),
        change("aws_s3_bucket.moved", ["delete", "create"], {
          before: { bucket: "old", region: "eu-west-1" },
          after: { bucket: "new", region: "eu-west-1" },
          replace_paths: [["bucket"]],
        }),
        change("aws_s3_bucket.gone", ["delete"], {
          before: { bucket: "gone", versioning: [{ enabled: true }] },
          after: null,
        }),
        change("aws_s3_bucket.same", ["no-op"], { before: { bucket: "same" }, after: { bucket: "same" } }),
        { address: "data.aws_caller_identity.me", mode: "data", change: { actions: ["read"] } },
      ],
    };

    expect(planView(plan)).toEqual([
      {
        address: "aws_s3_bucket.new",
        action: "create",
        attributes: [
          { path: "arn", afterUnknown: true, forcesReplacement: false },
          { path: "bucket", after: '"logs"', afterUnknown: false, forcesReplacement: false },
          { path: "password", after: '"(sensitive)"', afterUnknown: false, forcesReplacement: false },
          { path: "tags.env", after: '"prod"', afterUnknown: false, forcesReplacement: false },
        ],
        hidden: 0,
      },
      {
        address: "aws_s3_bucket.tagged",
        action: "update",
        attributes: [
          {
            path: "tags.env",
            before: '"dev"',
            after: '"prod"',
            afterUnknown: false,
            forcesReplacement: false,
          },
        ],
        hidden: 0,
      },
      {
        address: "aws_s3_bucket.moved",
        action: "replace",
        attributes: [
          { path: "bucket", before: '"old"', after: '"new"', afterUnknown: false, forcesReplacement: true },
        ],
        hidden: 0,
      },
      {
        address: "aws_s3_bucket.gone",
        action: "destroy",
        attributes: [
          { path: "bucket", before: '"gone"', afterUnknown: false, forcesReplacement: false },
          { path: "versioning[0].enabled", before: "true", afterUnknown: false, forcesReplacement: false },
        ],
        hidden: 0,
      },
    ]);
  });

  it("shows nothing for no plan, and caps a huge resource's rows", () => {
    expect(planView(undefined)).toEqual([]);
    expect(planView({ format_version: "1.2" })).toEqual([]);
    const after = Object.fromEntries(Array.from({ length: 250 }, (_, index) => [`key${index}`, index]));
    const [huge] = planView({
      resource_changes: [change("aws_s3_bucket.huge", ["create"], { before: null, after })],
    });
    expect(huge?.attributes).toHaveLength(200);
    expect(huge?.hidden).toBe(50);
  });
});

describe("the dependency graph's layout", () => {
  it("puts each stack one column right of the deepest stack it depends on, and draws each dependency", () => {
    const graph = layoutGraph([
      { name: "web", dependencies: ["network", "db"] },
      { name: "db", dependencies: ["network"] },
      { name: "network", dependencies: [] },
      { name: "audit", dependencies: [] },
      { name: "ghost", dependencies: ["not-in-the-app"] },
    ]);
    const column = (name: string) => graph.nodes.find((node) => node.name === name)?.x;
    expect(column("network")).toBe(column("audit"));
    expect(column("ghost")).toBe(column("network"));
    expect(column("db")).toBeGreaterThan(column("network") ?? 0);
    expect(column("web")).toBeGreaterThan(column("db") ?? 0);
    expect(graph.edges.map((edge) => `${edge.from}->${edge.to}`).sort()).toEqual([
      "db->web",
      "network->db",
      "network->web",
    ]);
    expect(graph.width).toBeGreaterThanOrEqual((column("web") ?? 0) + NODE_WIDTH);
    expect(layoutGraph([]).nodes).toEqual([]);
  });

  it("places 200 stacks without overlap", () => {
    const stacks = Array.from({ length: 200 }, (_, index) => ({
      name: `stack-${index}`,
      dependencies: index >= 20 ? [`stack-${index % 20}`] : [],
    }));
    const graph = layoutGraph(stacks);
    const places = new Set(graph.nodes.map((node) => `${node.x},${node.y}`));
    expect(places.size).toBe(200);
    expect(graph.edges).toHaveLength(180);
  });
});

describe("times as people read them", () => {
  it("says how long ago or how soon", () => {
    expect(relative(-2_000)).toBe("just now");
    expect(relative(-90_000)).toBe("2 min ago");
    expect(relative(3 * 3_600_000)).toBe("in 3 h");
    expect(relative(-5 * 86_400_000)).toBe("5 d ago");
  });
});
