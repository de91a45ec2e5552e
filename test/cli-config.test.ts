import { mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { parseRunnerConfig } from "../src/config/runner-config.ts";
import { SETUP_PROVIDER_MIRROR } from "../src/install-root.ts";
import { TerraformCli } from "../src/terraform/cli.ts";
import {
  type CliConfigInputs,
  type MirrorPackage,
  mirrorLinks,
  renderCliConfig,
  resolveCliConfig,
} from "../src/terraform/cli-config.ts";
import { prepareCliConfig, scanMirror } from "../src/terraform/cli-config-disk.ts";
import { errorOf } from "./support/errors.ts";
import { engines, tempDir } from "./support/toolchain.ts";

const AWS: MirrorPackage = {
  provider: "registry.terraform.io/hashicorp/aws",
  path: "registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64",
};

/** Nothing configured, nothing in the environment, nothing on disk; a test adds what it needs. */
function inputs(overrides: Partial<CliConfigInputs> = {}): CliConfigInputs {
  return {
    configured: undefined,
    envFile: undefined,
    setupMirror: "/app/.toolchain/providers",
    existingFiles: new Set(),
    mirrors: new Map(),
    ...overrides,
  };
}

describe("which CLI configuration the engine gets", () => {
  const setUp = new Map([["/app/.toolchain/providers", [AWS]]]);

  it("is the configured file, as it is, before anything else", () => {
    const resolution = resolveCliConfig(
      inputs({
        configured: { cliConfigFile: "/etc/runner/terraformrc" },
        envFile: "/home/me/.terraformrc",
        existingFiles: new Set(["/etc/runner/terraformrc", "/home/me/.terraformrc"]),
        mirrors: setUp,
      }),
    );
    expect(resolution).toEqual({
      choice: { kind: "file", file: "/etc/runner/terraformrc", from: "terraform.cliConfigFile" },
    });
  });

  it("is the configured mirror's before TF_CLI_CONFIG_FILE and the set-up's mirror", () => {
    const mirror = "/opt/tf-plugins";
    const resolution = resolveCliConfig(
      inputs({
        configured: { providerMirror: mirror },
        envFile: "/home/me/.terraformrc",
        existingFiles: new Set(["/home/me/.terraformrc"]),
        mirrors: new Map([...setUp, [mirror, [AWS]]]),
      }),
    );
    expect(resolution.choice).toEqual({
      kind: "mirror",
      mirror,
      packages: [AWS],
      from: "terraform.providerMirror",
    });
  });

  it("is TF_CLI_CONFIG_FILE when it names an existing file: the user's choice wins over the set-up's mirror", () => {
    const resolution = resolveCliConfig(
      inputs({
        envFile: "/home/me/.terraformrc",
        existingFiles: new Set(["/home/me/.terraformrc"]),
        mirrors: setUp,
      }),
    );
    expect(resolution).toEqual({
      choice: { kind: "file", file: "/home/me/.terraformrc", from: "TF_CLI_CONFIG_FILE" },
    });
  });

  it("ignores TF_CLI_CONFIG_FILE naming a missing file, says so, and takes the set-up's mirror", () => {
    expect(resolveCliConfig(inputs({ envFile: "/root/.terraformrc", mirrors: setUp }))).toEqual({
      choice: { kind: "mirror", mirror: "/app/.toolchain/providers", packages: [AWS], from: "set-up" },
      ignoredEnvFile: "/root/.terraformrc",
    });
  });

  it("leaves the engine to its own default without a set-up mirror holding providers", () => {
    expect(resolveCliConfig(inputs({ envFile: "/root/.terraformrc" }))).toEqual({
      choice: { kind: "engine-default" },
      ignoredEnvFile: "/root/.terraformrc",
    });
    const emptySetUp = new Map([["/app/.toolchain/providers", []]]);
    expect(resolveCliConfig(inputs({ envFile: "", mirrors: emptySetUp }))).toEqual({
      choice: { kind: "engine-default" },
    });
  });

  it("refuses a configured file or mirror that is not there, or a mirror without providers, naming the field", () => {
    expect(
      errorOf(() => resolveCliConfig(inputs({ configured: { cliConfigFile: "/etc/nope.tfrc" } }))),
    ).toEqual({ code: "CONFIG_INVALID", message: "terraform.cliConfigFile: /etc/nope.tfrc is not a file" });
    expect(errorOf(() => resolveCliConfig(inputs({ configured: { providerMirror: "/opt/nope" } })))).toEqual({
      code: "CONFIG_INVALID",
      message: "terraform.providerMirror: /opt/nope is not a folder",
    });
    const empty = errorOf(() =>
      resolveCliConfig(
        inputs({ configured: { providerMirror: "/opt/empty" }, mirrors: new Map([["/opt/empty", []]]) }),
      ),
    );
    expect(empty.code).toBe("CONFIG_INVALID");
    expect(empty.message).toMatch(/^terraform\.providerMirror: \/opt\/empty holds no provider packages/);
  });
});

describe("the runner's own mirror folder and CLI configuration", () => {
  it("links a package of one public registry under the other too, and other hosts as they are", () => {
    const packages: MirrorPackage[] = [
      AWS,
      {
        provider: "registry.opentofu.org/hashicorp/random",
        path: "registry.opentofu.org/hashicorp/random/terraform-provider-random_3.7.2_linux_amd64.zip",
      },
      { provider: "example.com/acme/thing", path: "example.com/acme/thing/1.0.0/linux_amd64" },
    ];
    expect(mirrorLinks("/opt/m", packages)).toEqual([
      {
        path: "example.com/acme/thing/1.0.0/linux_amd64",
        target: "/opt/m/example.com/acme/thing/1.0.0/linux_amd64",
      },
      {
        path: "registry.opentofu.org/hashicorp/aws/5.100.0/linux_amd64",
        target: "/opt/m/registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64",
      },
      {
        path: "registry.opentofu.org/hashicorp/random/terraform-provider-random_3.7.2_linux_amd64.zip",
        target:
          "/opt/m/registry.opentofu.org/hashicorp/random/terraform-provider-random_3.7.2_linux_amd64.zip",
      },
      {
        path: "registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64",
        target: "/opt/m/registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64",
      },
      {
        path: "registry.terraform.io/hashicorp/random/terraform-provider-random_3.7.2_linux_amd64.zip",
        target:
          "/opt/m/registry.opentofu.org/hashicorp/random/terraform-provider-random_3.7.2_linux_amd64.zip",
      },
    ]);
  });

  it("keeps the mirror's own package where it has one under both hosts", () => {
    const both: MirrorPackage[] = [AWS, { ...AWS, path: AWS.path.replace("terraform.io", "opentofu.org") }];
    expect(mirrorLinks("/m", both).map((link) => link.target)).toEqual([
      "/m/registry.opentofu.org/hashicorp/aws/5.100.0/linux_amd64",
      "/m/registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64",
    ]);
  });

  it("takes the mirror's providers from it and every other provider from its registry", () => {
    const links = mirrorLinks("/opt/m", [AWS]);
    expect(renderCliConfig("/data/cli-config/k/providers", links)).toBe(
      [
        "# Written by gitops-runner. Providers found in the configured mirror come from",
        "# links to it in this folder; every other provider comes from its registry.",
        "provider_installation {",
        "  filesystem_mirror {",
        '    path    = "/data/cli-config/k/providers"',
        "    include = [",
        '      "registry.opentofu.org/hashicorp/aws",',
        '      "registry.terraform.io/hashicorp/aws",',
        "    ]",
        "  }",
        "  direct {",
        "    exclude = [",
        '      "registry.opentofu.org/hashicorp/aws",',
        '      "registry.terraform.io/hashicorp/aws",',
        "    ]",
        "  }",
        "}",
        "disable_checkpoint = true",
        "",
      ].join("\n"),
    );
  });
});

describe("the terraform section of the runner's configuration", () => {
  it("names a CLI configuration file or a provider mirror", () => {
    expect(
      parseRunnerConfig("r.json", '{"terraform":{"providerMirror":"/opt/tf-plugins"}}').terraform,
    ).toEqual({
      providerMirror: "/opt/tf-plugins",
    });
    expect(parseRunnerConfig("r.json", "{}").terraform).toBeUndefined();
  });

  it("refuses both at once, relative paths and unknown fields, naming the file and the field", () => {
    const both = '{"terraform":{"cliConfigFile":"/etc/rc","providerMirror":"/opt/m"}}';
    expect(errorOf(() => parseRunnerConfig("r.json", both))).toEqual({
      code: "CONFIG_INVALID",
      message: "r.json: terraform: cliConfigFile and providerMirror exclude each other: set one of them",
    });
    expect(errorOf(() => parseRunnerConfig("r.json", '{"terraform":{"cliConfigFile":"rc"}}')).message).toBe(
      "r.json: terraform.cliConfigFile: an absolute path",
    );
    expect(errorOf(() => parseRunnerConfig("r.json", '{"terraform":{"mirror":"/m"}}')).message).toBe(
      'r.json: terraform: Unrecognized key: "mirror"',
    );
  });
});

describe("a provider mirror on disk", () => {
  it("is read as its packages, unpacked and packed, following links; other files are not packages", async () => {
    const mirror = await tempDir("mirror");
    const unpacked = path.join(mirror, "registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64");
    await mkdir(unpacked, { recursive: true });
    await writeFile(path.join(unpacked, "terraform-provider-aws_v5.100.0_x5"), "");
    await writeFile(path.join(mirror, "registry.terraform.io/hashicorp/aws/5.100.0/LICENSE.txt"), "");
    const packedDir = path.join(mirror, "example.com/acme/thing");
    await mkdir(packedDir, { recursive: true });
    await writeFile(path.join(packedDir, "terraform-provider-thing_1.0.0_linux_arm64.zip"), "");
    await writeFile(path.join(packedDir, "README.md"), "");
    await symlink(path.join(mirror, "registry.terraform.io"), path.join(mirror, "registry.opentofu.org"));

    expect(await scanMirror(mirror)).toEqual([
      {
        provider: "example.com/acme/thing",
        path: "example.com/acme/thing/terraform-provider-thing_1.0.0_linux_arm64.zip",
      },
      {
        provider: "registry.opentofu.org/hashicorp/aws",
        path: "registry.opentofu.org/hashicorp/aws/5.100.0/linux_amd64",
      },
      AWS,
    ]);
    expect(await scanMirror(path.join(mirror, "nope"))).toBeUndefined();
    expect(await scanMirror(path.join(unpacked, "terraform-provider-aws_v5.100.0_x5"))).toBeUndefined();
  });
});

/** A mirror as machines carry it (/opt/tf-plugins): the AWS provider under Terraform's registry only. */
async function terraformOnlyMirror(): Promise<string> {
  const mirror = await tempDir("one-host-mirror");
  const platformDir = path.join(
    mirror,
    "registry.terraform.io",
    "hashicorp",
    "aws",
    "5.100.0",
    "linux_amd64",
  );
  await mkdir(platformDir, { recursive: true });
  const binary = "terraform-provider-aws_v5.100.0_x5";
  const source = path.join(
    SETUP_PROVIDER_MIRROR,
    "registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64",
    binary,
  );
  await symlink(source, path.join(platformDir, binary));
  return mirror;
}

describe.each(engines())("%s with the runner's CLI configuration for a provider mirror", (binary) => {
  it("installs a provider that the mirror holds under Terraform's registry only, and reuses what it wrote", async () => {
    const mirror = await terraformOnlyMirror();
    const dataDir = await tempDir("cli-config-data");
    const options = {
      configured: { providerMirror: mirror },
      envFile: "/nonexistent/terraformrc",
      setupMirror: SETUP_PROVIDER_MIRROR,
      dataDir,
      logger: pino({ level: "silent" }),
    };
    const prepared = await prepareCliConfig(options);
    const file = prepared.env.TF_CLI_CONFIG_FILE ?? "";
    expect(path.dirname(path.dirname(file))).toBe(path.join(dataDir, "cli-config"));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, "utf8")).toContain('"registry.opentofu.org/hashicorp/aws"');
    expect((await prepareCliConfig(options)).env).toEqual(prepared.env);

    const stack = await tempDir("aws-init");
    await writeFile(
      path.join(stack, "main.tf.json"),
      JSON.stringify({ terraform: { required_providers: { aws: { source: "aws", version: "5.100.0" } } } }),
    );
    const terraform = new TerraformCli({
      binary,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...prepared.env },
      timeoutMs: 120_000,
      lockTimeout: "0s",
    });
    const log = await terraform.init(stack);
    expect(log).toMatch(/Installed hashicorp\/aws v5\.100\.0/);
    const lock = await readFile(path.join(stack, ".terraform.lock.hcl"), "utf8");
    const registry = path.basename(binary) === "tofu" ? "registry.opentofu.org" : "registry.terraform.io";
    expect(lock).toContain(`provider "${registry}/hashicorp/aws"`);
  });
});
