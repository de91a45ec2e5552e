import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { onTestFinished } from "vitest";
import { exists } from "../../src/fs.ts";
import { repoRoot } from "./toolchain.ts";

const run = promisify(execFile);

/** A resource of the generated app: terraform_data with an input, optionally reading another stack's resource. */
export interface ResourceSpec {
  readonly input: Record<string, unknown>;
  /** "stack.resource": puts that resource's id into this one's input as `upstream`. */
  readonly reads?: string;
  /** Seconds a local-exec provisioner sleeps on create: a slow resource. */
  readonly slowCreate?: number;
  /** A file the provisioner appends a line to when it starts, so a test can see the create begin. */
  readonly createMarker?: string;
}

export type AppSpec = Record<string, Record<string, ResourceSpec>>;

/** CDK for Terraform, or its fork CDK Terrain, which writes the same files. */
export type Framework = "cdktf" | "cdktn";

/** Writes main.ts of a cdktf app with one TerraformStack per key of the spec. */
export function appSource(spec: AppSpec, framework: Framework = "cdktf"): string {
  const lines = [
    `import { App, DataResource, TerraformStack } from "${framework}";`,
    "",
    "const app = new App();",
  ];
  const variable = (stack: string, resource: string) =>
    `r_${stack}_${resource}`.replace(/[^A-Za-z0-9_]/g, "_");
  for (const [stack, resources] of Object.entries(spec)) {
    const stackVar = `s_${stack}`.replace(/[^A-Za-z0-9_]/g, "_");
    lines.push(`const ${stackVar} = new TerraformStack(app, ${JSON.stringify(stack)});`);
    for (const [name, resource] of Object.entries(resources)) {
      const input = JSON.stringify(resource.input);
      const value = resource.reads
        ? `{ ...${input}, upstream: ${variable(...(resource.reads.split(".") as [string, string]))}.id }`
        : input;
      const marker = resource.createMarker ? `echo created >> ${resource.createMarker} && ` : "";
      const provisioners = resource.slowCreate
        ? `, provisioners: [{ type: "local-exec", command: ${JSON.stringify(`${marker}sleep ${resource.slowCreate}`)} }]`
        : "";
      lines.push(
        `const ${variable(stack, name)} = new DataResource(${stackVar}, ${JSON.stringify(name)}, { input: ${value}${provisioners} });`,
      );
    }
  }
  lines.push("app.synth();", "");
  return lines.join("\n");
}

/** A real git repository in a temporary folder, holding a cdktf app. */
export class TestRepo {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(
    spec: AppSpec,
    options: { appDir?: string; framework?: Framework } = {},
  ): Promise<TestRepo> {
    const dir = await mkdtemp(path.join(tmpdir(), "gitops-runner-repo-"));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const repo = new TestRepo(dir);
    await repo.git("init", "--quiet", "--initial-branch=main");
    await repo.git("config", "user.email", "dev@example.invalid");
    await repo.git("config", "user.name", "Developer");
    const appDir = path.join(dir, options.appDir ?? "");
    await mkdir(appDir, { recursive: true });
    const framework = options.framework ?? "cdktf";
    await cp(path.join(repoRoot, "test", "fixtures", `${framework}-app`), appDir, { recursive: true });
    await writeFile(
      path.join(appDir, "cdktf.json"),
      JSON.stringify({ language: "typescript", app: "node main.ts" }),
    );
    await writeFile(path.join(appDir, "main.ts"), appSource(spec, framework));
    await repo.commit("Initial stacks");
    return repo;
  }

  /** A repository holding one of this project's example apps (stacks/demo or stacks/aws) at its root. */
  static async fromExample(example: "demo" | "aws"): Promise<TestRepo> {
    const dir = await mkdtemp(path.join(tmpdir(), "gitops-runner-repo-"));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const repo = new TestRepo(dir);
    await repo.git("init", "--quiet", "--initial-branch=main");
    await repo.git("config", "user.email", "dev@example.invalid");
    await repo.git("config", "user.name", "Developer");
    const exampleDir = path.join(repoRoot, "stacks", example);
    await cp(exampleDir, dir, {
      recursive: true,
      filter: (source) => path.basename(source) !== "node_modules",
    });
    // The demo has its own package.json and lockfile; the AWS app uses those of stacks/.
    if (!(await exists(path.join(exampleDir, "package.json")))) {
      for (const file of ["package.json", "package-lock.json"]) {
        await cp(path.join(repoRoot, "stacks", file), path.join(dir, file));
      }
    }
    await repo.commit(`The ${example} example`);
    return repo;
  }

  async write(file: string, content: string): Promise<void> {
    await mkdir(path.dirname(path.join(this.dir, file)), { recursive: true });
    await writeFile(path.join(this.dir, file), content);
  }

  async remove(file: string): Promise<void> {
    await rm(path.join(this.dir, file), { force: true });
  }

  async setApp(spec: AppSpec, appDir = ""): Promise<void> {
    await this.write(path.join(appDir, "main.ts"), appSource(spec));
  }

  async commit(message: string): Promise<string> {
    await this.git("add", "--all");
    await this.git("commit", "--quiet", "--allow-empty", "-m", message);
    return this.head();
  }

  async head(): Promise<string> {
    return (await this.git("rev-parse", "HEAD")).trim();
  }

  async checkout(branch: string, create = false): Promise<void> {
    await this.git("checkout", "--quiet", ...(create ? ["-b"] : []), branch);
  }

  async git(...args: string[]): Promise<string> {
    const { stdout } = await run("git", args, { cwd: this.dir });
    return stdout;
  }
}

const sharedNpmCache = path.join(tmpdir(), "gitops-runner-test-dependency-cache");

/**
 * A fresh data directory whose dependency cache is shared by all tests: its
 * entries are keyed by lockfile hash and written atomically, as in production.
 */
export async function dataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "gitops-runner-data-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  await mkdir(sharedNpmCache, { recursive: true });
  await mkdir(path.join(dir, "cache"), { recursive: true });
  await symlink(sharedNpmCache, path.join(dir, "cache", "npm"));
  return dir;
}

/**
 * An app of one stack whose only resource, on create, writes a line every
 * tenth of a second to its output (so its apply's log grows) and to `ticks`,
 * for as long as the file `hold` exists (two minutes at most).
 */
export function heldAppSource(options: {
  readonly stack: string;
  readonly hold: string;
  readonly ticks: string;
  readonly input?: Record<string, unknown>;
}): string {
  const loop = `i=0; while [ -e ${options.hold} ] && [ $i -lt 1200 ]; do i=$((i+1)); echo "tick $i" | tee -a ${options.ticks}; sleep 0.1; done`;
  return `import { App, DataResource, TerraformStack } from "cdktf";

const app = new App();
const stack = new TerraformStack(app, ${JSON.stringify(options.stack)});
new DataResource(stack, "held", {
  input: ${JSON.stringify(options.input ?? { version: 1 })},
  provisioners: [{ type: "local-exec", command: ${JSON.stringify(loop)} }],
});
app.synth();
`;
}
