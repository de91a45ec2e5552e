import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRunnerError } from "../src/errors.ts";
import { driftedResources, isDrifted } from "../src/terraform/drift.ts";
import { splitJsonOutput } from "../src/terraform/json-output.ts";
import {
  destroys,
  type PlanJson,
  parsePlanJson,
  resourceChanges,
  summarize,
} from "../src/terraform/plan-json.ts";
import { redactPlan, redactText } from "../src/terraform/redact.ts";
import { errorOf } from "./support/errors.ts";
import { engines, terraformCli } from "./support/toolchain.ts";

const FIRST_PASSWORD = "first-db-password-a91c";
const SECOND_PASSWORD = "second-db-password-b72d";
const DEFAULT_TOKEN = "default-api-token-c63e";

const fixtures = path.join(import.meta.dirname, "fixtures", "plans");

async function fixture(name: string): Promise<PlanJson> {
  return parsePlanJson(JSON.parse(await readFile(path.join(fixtures, name), "utf8")), name);
}

/** Reads a path of a plan whose parts the schema does not model. */
function at(value: unknown, ...keys: (string | number)[]): unknown {
  let current = value;
  for (const key of keys) current = (current as Record<string | number, unknown> | undefined)?.[key];
  return current;
}

/**
 * A stack of built-in terraform_data resources (no provider to install): a
 * sensitive variable, a sensitive variable with a default, a child module that
 * receives the secret, and a sensitive output. `changed` updates, replaces,
 * deletes and creates resources.
 */
function stack(options: { readonly note: string; readonly changed: boolean }) {
  const { note, changed } = options;
  return {
    variable: {
      db_password: { type: "string", sensitive: true },
      api_token: { type: "string", sensitive: true, default: DEFAULT_TOKEN },
      region: { type: "string" },
    },
    module: { app: { source: "./app", password: "${var.db_password}" } },
    resource: {
      terraform_data: {
        db: {
          input: {
            password: "${var.db_password}",
            region: "${var.region}",
            tags: { team: changed ? "platform" : "core" },
          },
        },
        token: { input: "${var.api_token}" },
        plain: changed ? { input: "hello again", triggers_replace: "v2" } : { input: "hello" },
        ...(changed ? { added: { input: "fresh" } } : { gone: { input: "bye" } }),
      },
    },
    output: {
      db_password: { value: "${var.db_password}", sensitive: true },
      region: { value: "${var.region}" },
      note: { value: note },
    },
  };
}

const appModule = {
  variable: { password: { type: "string", sensitive: true } },
  resource: { terraform_data: { inner: { input: { password: "${var.password}", size: 1 } } } },
};

interface RealPlans {
  /** The applied configuration planned again. */
  readonly unchanged: PlanJson;
  readonly unchangedHasChanges: boolean;
  /** Only an output's value differs. */
  readonly outputOnly: PlanJson;
  readonly outputOnlyHasChanges: boolean;
  /** Update, replace, delete and create, and a new value for the secret. */
  readonly changes: PlanJson;
}

/** Applies the first configuration, then plans three variants of it with the real engine. */
async function makePlans(binary: string, dir: string): Promise<RealPlans> {
  const terraform = await terraformCli(binary);
  const env = (password: string) => ({ TF_VAR_db_password: password, TF_VAR_region: "eu-west-1" });
  const write = (config: object) => writeFile(path.join(dir, "main.tf.json"), JSON.stringify(config));
  const plan = async (name: string, password: string) => {
    const planFile = path.join(dir, `${name}.tfplan`);
    const outcome = await terraform.plan(dir, planFile, { env: env(password) });
    return { json: (await terraform.show(dir, planFile)).plan, hasChanges: outcome.hasChanges };
  };

  await mkdir(path.join(dir, "app"));
  await writeFile(path.join(dir, "app", "main.tf.json"), JSON.stringify(appModule));
  await write(stack({ note: "first", changed: false }));
  await terraform.init(dir);
  await plan("first", FIRST_PASSWORD);
  await terraform.apply(dir, path.join(dir, "first.tfplan"));

  const unchanged = await plan("unchanged", FIRST_PASSWORD);
  await write(stack({ note: "second", changed: false }));
  const outputOnly = await plan("output-only", FIRST_PASSWORD);
  await write(stack({ note: "first", changed: true }));
  const changes = await plan("changes", SECOND_PASSWORD);
  return {
    unchanged: unchanged.json,
    unchangedHasChanges: unchanged.hasChanges,
    outputOnly: outputOnly.json,
    outputOnlyHasChanges: outputOnly.hasChanges,
    changes: changes.json,
  };
}

describe.each(engines())("a plan made by %s", (binary) => {
  let dir = "";
  let plans: RealPlans;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "gitops-runner-plan-json-"));
    plans = await makePlans(binary, dir);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("is summarized as Terraform counts it: a replace is one add and one destroy, and a replace", () => {
    expect(summarize(plans.changes)).toEqual({ add: 2, change: 2, destroy: 2, replace: 1, import: 0 });
    expect(summarize(plans.unchanged)).toEqual({ add: 0, change: 0, destroy: 0, replace: 0, import: 0 });
  });

  it("lists the resources it changes with Terraform's actions, leaving out no-ops", () => {
    expect(resourceChanges(plans.changes)).toEqual([
      { address: "terraform_data.added", actions: ["create"] },
      { address: "terraform_data.db", actions: ["update"] },
      { address: "terraform_data.gone", actions: ["delete"] },
      { address: "terraform_data.plain", actions: ["delete", "create"] },
      { address: "module.app.terraform_data.inner", actions: ["update"] },
    ]);
    expect(resourceChanges(plans.unchanged)).toEqual([]);
  });

  it("names the deleted and the replaced resource as destroys", () => {
    expect(destroys(plans.changes).map((resource) => resource.address)).toEqual([
      "terraform_data.gone",
      "terraform_data.plain",
    ]);
    expect(destroys(plans.outputOnly)).toEqual([]);
  });

  it("counts as drift when resources or outputs change, judged from the JSON", () => {
    expect(plans.unchangedHasChanges).toBe(false);
    expect(isDrifted(plans.unchanged)).toBe(false);

    expect(plans.outputOnlyHasChanges).toBe(true);
    expect(resourceChanges(plans.outputOnly)).toEqual([]);
    expect(isDrifted(plans.outputOnly)).toBe(true);

    expect(isDrifted(plans.changes)).toBe(true);
  });

  it("has no drifted resources: terraform_data reads nothing back on refresh", () => {
    expect(driftedResources(plans.changes)).toEqual([]);
    expect(driftedResources(plans.unchanged)).toEqual([]);
  });

  it("is redacted wherever a sensitive value appears, and keeps the rest", () => {
    const plan = plans.changes;
    const redacted = redactPlan(plan);
    const text = JSON.stringify(redacted);
    for (const secret of [FIRST_PASSWORD, SECOND_PASSWORD, DEFAULT_TOKEN]) {
      expect(JSON.stringify(plan)).toContain(secret);
      expect(text).not.toContain(secret);
    }

    const db = redacted.resource_changes?.find((resource) => resource.address === "terraform_data.db");
    expect(at(db?.change.before, "input")).toEqual({
      password: "(sensitive)",
      region: "eu-west-1",
      tags: { team: "core" },
    });
    expect(at(db?.change.after, "input")).toEqual({
      password: "(sensitive)",
      region: "eu-west-1",
      tags: { team: "platform" },
    });
    // Terraform does not mark the copy in terraform_data's output; it is hidden as a copy of a marked value.
    const rawDb = plan.resource_changes?.find((resource) => resource.address === "terraform_data.db");
    expect(at(rawDb?.change.before_sensitive, "output", "password")).toBeUndefined();
    expect(at(db?.change.before, "output", "password")).toBe("(sensitive)");

    const token = redacted.resource_changes?.find((resource) => resource.address === "terraform_data.token");
    expect(at(token?.change.after, "input")).toBe("(sensitive)");

    expect(at(redacted.output_changes, "db_password", "before")).toBe("(sensitive)");
    expect(at(redacted.output_changes, "db_password", "after")).toBe("(sensitive)");
    expect(at(redacted.output_changes, "region", "after")).toBe("eu-west-1");
    expect(at(redacted, "planned_values", "outputs", "db_password", "value")).toBe("(sensitive)");
    expect(at(redacted, "planned_values", "outputs", "note", "value")).toBe("first");

    expect(at(redacted, "variables")).toEqual({
      api_token: { value: "(sensitive)" },
      db_password: { value: "(sensitive)" },
      region: { value: "eu-west-1" },
    });
    expect(at(redacted, "configuration", "root_module", "variables", "api_token", "default")).toBe(
      "(sensitive)",
    );

    const child = at(redacted, "planned_values", "root_module", "child_modules", 0, "resources", 0);
    expect(at(child, "address")).toBe("module.app.terraform_data.inner");
    expect(at(child, "values", "input")).toEqual({ password: "(sensitive)", size: 1 });
    const priorDb = (at(redacted, "prior_state", "values", "root_module", "resources") as unknown[]).find(
      (resource) => at(resource, "address") === "terraform_data.db",
    );
    expect(at(priorDb, "values", "input", "password")).toBe("(sensitive)");
  });

  it("is redacted into a copy that still parses as a plan, leaving the original alone", () => {
    const original = structuredClone(plans.changes);
    const redacted = redactPlan(plans.changes);
    expect(plans.changes).toEqual(original);
    expect(redactPlan(redacted)).toEqual(redacted);
    const reparsed = parsePlanJson(JSON.parse(JSON.stringify(redacted)), "redacted plan");
    expect(summarize(reparsed)).toEqual(summarize(plans.changes));
    expect(resourceChanges(reparsed)).toEqual(resourceChanges(plans.changes));
  });

  it("is read whole when the engine warns before it on stdout, and its warnings are kept apart", async () => {
    const missing = path.join(dir, "missing.tfrc");
    const terraform = await terraformCli(binary);
    const shown = await terraform.show(dir, path.join(dir, "changes.tfplan"), {
      env: { TF_CLI_CONFIG_FILE: missing },
    });
    expect(shown.plan).toEqual(plans.changes);
    // OpenTofu prints this warning on stdout, Terraform on stderr: either way it is a warning.
    expect(shown.warnings).toContain("Unable to open CLI configuration file");
    expect(shown.warnings).toContain(missing);
    expect(shown.warnings).not.toContain('"format_version"');
  });

  it("is not what a state shown as JSON is: that is refused with a code", async () => {
    const terraform = await terraformCli(binary);
    const error = await terraform
      .show(dir, path.join(dir, "terraform.tfstate"))
      .catch((caught: unknown) => caught);
    expect(isRunnerError(error, "TERRAFORM_OUTPUT_INVALID")).toBe(true);
    expect((error as Error).message).toContain("terraform.tfstate: a state, not a plan");
  });
});

const TOFU_WARNING = [
  "",
  "Warning: Unable to open CLI configuration file",
  "",
  'The CLI configuration file at "/root/.terraformrc" does not exist.',
].join("\n");

describe("the JSON document in what the engine printed", () => {
  const document = {
    format_version: "1.2",
    terraform_version: "1.12.6",
    planned_values: { root_module: {} },
  };

  it("is the whole of stdout when that is JSON, pretty-printed or not; stderr is a warning", () => {
    expect(splitJsonOutput(JSON.stringify(document), "", "show")).toEqual({ document, warnings: "" });
    expect(splitJsonOutput(`${JSON.stringify(document, null, 2)}\n`, " note\n", "show")).toEqual({
      document,
      warnings: "note",
    });
  });

  it("is found after OpenTofu's warning about a missing CLI configuration, which is kept as warnings", () => {
    const stdout = `${TOFU_WARNING}\n${JSON.stringify(document)}`;
    expect(splitJsonOutput(stdout, "There are some problems with the CLI configuration:\n", "show")).toEqual({
      document,
      warnings: `There are some problems with the CLI configuration:\n\n${TOFU_WARNING.trim()}`,
    });
  });

  it("is found between lines of text, which may contain braces", () => {
    const stdout = ["Warning: odd {", JSON.stringify(document), "{ not json }", "done"].join("\n");
    expect(splitJsonOutput(stdout, "", "show")).toEqual({
      document,
      warnings: "Warning: odd {\n{ not json }\ndone",
    });
  });

  it("is missing from text, an array or a scalar: a coded error that quotes the output", () => {
    expect(errorOf(() => splitJsonOutput(TOFU_WARNING, "", "show -json p.tfplan"))).toEqual({
      code: "TERRAFORM_OUTPUT_INVALID",
      message: `show -json p.tfplan: not JSON: ${JSON.stringify(TOFU_WARNING.trim())}`,
    });
    expect(errorOf(() => splitJsonOutput("[1]\n", "", "show")).code).toBe("TERRAFORM_OUTPUT_INVALID");
    expect(errorOf(() => splitJsonOutput("", "", "show")).message).toBe("show: not JSON: (no output)");
  });

  it("must be one: two documents are a coded error naming their lines", () => {
    const stdout = ["warning", JSON.stringify(document), JSON.stringify(document)].join("\n");
    expect(errorOf(() => splitJsonOutput(stdout, "", "show"))).toEqual({
      code: "TERRAFORM_OUTPUT_INVALID",
      message: "show: 2 JSON documents in the output (lines 2, 3), expected one",
    });
  });
});

describe("a JSON document that is not a plan", () => {
  it("is refused when it is a state, with resources or empty, as both engines write them", () => {
    const states = [
      {
        format_version: "1.0",
        terraform_version: "1.11.4",
        values: { outputs: { o: { sensitive: false, value: "v", type: "string" } }, root_module: {} },
      },
      { format_version: "1.0", terraform_version: "1.12.6", values: { root_module: {} } },
      { format_version: "1.0" },
    ];
    for (const state of states) {
      expect(errorOf(() => parsePlanJson(state, "show -json terraform.tfstate"))).toEqual({
        code: "TERRAFORM_OUTPUT_INVALID",
        message:
          "show -json terraform.tfstate: a state, not a plan (it has no planned_values, the field every plan has)",
      });
    }
  });

  it("is refused when it lacks planned_values for another reason, naming the field", () => {
    expect(
      errorOf(() =>
        parsePlanJson({ format_version: "1.2", terraform_version: "1.11.4", resource_changes: [] }, "x"),
      ),
    ).toEqual({
      code: "TERRAFORM_OUTPUT_INVALID",
      message: "x: unexpected plan JSON: planned_values: Invalid input: expected object, received undefined",
    });
    expect(errorOf(() => parsePlanJson({}, "x")).code).toBe("TERRAFORM_OUTPUT_INVALID");
  });

  it("is accepted as a plan when it has planned_values, even with nothing in it", () => {
    const empty = { format_version: "1.2", terraform_version: "1.12.6", planned_values: { root_module: {} } };
    expect(summarize(parsePlanJson(empty, "empty"))).toEqual({
      add: 0,
      change: 0,
      destroy: 0,
      replace: 0,
      import: 0,
    });
  });
});

describe("a plan of AWS resources changed out of band (captured from OpenTofu against moto)", () => {
  const name = "out-of-band-aws.json";

  it("names each drifted resource with the attribute paths that changed", async () => {
    expect(driftedResources(await fixture(name))).toEqual([
      {
        address: "aws_s3_bucket.artifacts",
        actions: ["update"],
        attributes: ["tags.owner", "tags.team", "tags_all.owner", "tags_all.team", "versioning[0].enabled"],
      },
      // Versioning is not in the configuration: drifted, though the plan leaves it be. The provider
      // reads tags back as {} where the state had null: not named, as nobody changed them.
      { address: "aws_s3_bucket.logs", actions: ["update"], attributes: ["versioning[0].enabled"] },
      { address: "aws_s3_bucket.scratch", actions: ["delete"], attributes: [] },
      {
        address: "aws_ssm_parameter.db_password",
        actions: ["update"],
        attributes: ["value", "version"],
      },
    ]);
  });

  it("is drift that re-creates the deleted bucket and destroys nothing", async () => {
    const plan = await fixture(name);
    expect(isDrifted(plan)).toBe(true);
    expect(summarize(plan)).toEqual({ add: 1, change: 2, destroy: 0, replace: 0, import: 0 });
    expect(destroys(plan)).toEqual([]);
  });

  it("hides the parameter's values everywhere, so drift is read from the plan before redaction", async () => {
    const plan = await fixture(name);
    const redacted = redactPlan(plan);
    const text = JSON.stringify(redacted);
    expect(text).not.toContain("initial-db-password-1f3a");
    expect(text).not.toContain("changed-out-of-band-9c2e");
    const drift = redacted.resource_drift?.find((resource) => resource.type === "aws_ssm_parameter");
    expect(at(drift?.change.before, "value")).toBe("(sensitive)");
    expect(at(drift?.change.after, "arn")).toBe(
      "arn:aws:ssm:us-east-1:123456789012:parameter/drift/db-password",
    );
    // The constant in the configuration is not marked by Terraform; it repeats a marked value.
    const resources = at(redacted, "configuration", "root_module", "resources") as unknown[];
    const parameter = resources.find((resource) => at(resource, "type") === "aws_ssm_parameter");
    expect(at(parameter, "expressions", "value", "constant_value")).toBe("(sensitive)");

    expect(
      driftedResources(redacted).find((resource) => resource.address.includes("ssm"))?.attributes,
    ).toEqual(["version"]);
  });
});

describe("hand-made plans in the documented format", () => {
  it("names paths down to the first difference, managed resources only, equal values not drift", async () => {
    expect(driftedResources(await fixture("drift-shapes.json"))).toEqual([
      {
        address: "module.network.aws_security_group.web",
        actions: ["update"],
        attributes: [
          "egress[0]",
          "ingress[0].cidr_blocks[1]",
          "ingress[1]",
          "tags",
          "tags_all.owner",
          'tags_all["kubernetes.io/cluster/main"]',
        ],
      },
    ]);
  });

  it("is not drift when the plan only reads data sources and keeps everything else", async () => {
    const plan = await fixture("drift-shapes.json");
    expect(isDrifted(plan)).toBe(false);
    expect(resourceChanges(plan)).toEqual([]);
    expect(summarize(plan)).toEqual({ add: 0, change: 0, destroy: 0, replace: 0, import: 0 });
  });

  it("hides sensitive values in deferred changes and action invocations", async () => {
    const redacted = redactPlan(await fixture("deferred-and-actions.json"));
    expect(at(redacted, "deferred_changes", 0, "resource_change", "change", "after")).toEqual({
      data: "(sensitive)",
      metadata: [{ name: "app" }],
    });
    expect(at(redacted, "action_invocations", 0, "config_values")).toEqual({
      function_name: "notify",
      payload: "(sensitive)",
    });
  });
});

describe("redactText", () => {
  it("replaces every occurrence of each secret, the longest first", () => {
    const log = "connect postgres://app:s3cret-long@db, then retry with s3cret-long and s3cret";
    expect(redactText(log, ["s3cret", "s3cret-long"])).toBe(
      "connect postgres://app:(sensitive)@db, then retry with (sensitive) and (sensitive)",
    );
  });

  it("takes secrets literally and never redacts the placeholder again", () => {
    expect(redactText("password=p.a*s(s)|1 sens", ["p.a*s(s)|1", "sens", "sensitive"])).toBe(
      "password=(sensitive) (sensitive)",
    );
  });

  it("also finds a secret as it reads inside JSON text", () => {
    const secret = 'quo"te\\back';
    expect(redactText(JSON.stringify({ password: secret }), [secret])).toBe('{"password":"(sensitive)"}');
  });

  it("ignores empty secrets and leaves text without secrets as it is", () => {
    expect(redactText("nothing to hide", ["", "absent"])).toBe("nothing to hide");
    expect(redactText("nothing to hide", [])).toBe("nothing to hide");
  });
});
