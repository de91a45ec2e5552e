import path from "node:path";
import type { RunnerConfig } from "../config/runner-config.ts";
import { RunnerError } from "../errors.ts";

/**
 * Which CLI configuration the engine runs with, decided from plain data: the
 * runner's configuration, TF_CLI_CONFIG_FILE, and what is on disk.
 *
 * 1. `terraform.cliConfigFile`: that file, as it is.
 * 2. `terraform.providerMirror`: a CLI configuration the runner writes for that mirror.
 * 3. TF_CLI_CONFIG_FILE naming an existing file: that file (the user's choice wins). Naming a
 *    missing file, it is ignored (the caller warns once), as the engines would only warn about it.
 * 4. The provider mirror a checkout's set-up prepared, when it holds providers: as in 2.
 * 5. Otherwise the engine's own default (~/.terraformrc, ~/.tofurc and their folders).
 */

/** cdktf writes a bare provider source ("aws"): Terraform looks it up on one, OpenTofu on the other. */
export const PUBLIC_REGISTRIES = ["registry.terraform.io", "registry.opentofu.org"] as const;

/** A provider package in a filesystem mirror. */
export interface MirrorPackage {
  /** The provider's source address, host/namespace/type: registry.terraform.io/hashicorp/aws. */
  readonly provider: string;
  /**
   * Its path inside the mirror, with "/": host/namespace/type/version/os_arch (unpacked) or
   * host/namespace/type/terraform-provider-type_version_os_arch.zip (packed).
   */
  readonly path: string;
}

export interface CliConfigInputs {
  readonly configured: RunnerConfig["terraform"];
  /** TF_CLI_CONFIG_FILE of the runner's environment. */
  readonly envFile: string | undefined;
  /** Where a checkout's set-up puts its provider mirror. */
  readonly setupMirror: string;
  /** Which of the files named above exist. */
  readonly existingFiles: ReadonlySet<string>;
  /** The packages in each mirror folder named above that exists (possibly none). */
  readonly mirrors: ReadonlyMap<string, readonly MirrorPackage[]>;
}

export type CliConfigChoice =
  | {
      readonly kind: "file";
      readonly file: string;
      readonly from: "terraform.cliConfigFile" | "TF_CLI_CONFIG_FILE";
    }
  | {
      readonly kind: "mirror";
      readonly mirror: string;
      readonly packages: readonly MirrorPackage[];
      readonly from: "terraform.providerMirror" | "set-up";
    }
  | { readonly kind: "engine-default" };

export interface CliConfigResolution {
  readonly choice: CliConfigChoice;
  /** TF_CLI_CONFIG_FILE's value when it names a file that does not exist, and was ignored. */
  readonly ignoredEnvFile?: string;
}

/** The files and folders resolveCliConfig asks about, for the caller to look at. */
export function cliConfigCandidates(
  inputs: Pick<CliConfigInputs, "configured" | "envFile" | "setupMirror">,
): { readonly files: readonly string[]; readonly mirrors: readonly string[] } {
  const files = [inputs.configured?.cliConfigFile, inputs.envFile].filter(isSet);
  const mirrors = [inputs.configured?.providerMirror, inputs.setupMirror].filter(isSet);
  return { files, mirrors };
}

export function resolveCliConfig(inputs: CliConfigInputs): CliConfigResolution {
  const { configured, envFile } = inputs;
  if (configured?.cliConfigFile) {
    const file = configured.cliConfigFile;
    if (!inputs.existingFiles.has(file)) {
      throw new RunnerError("CONFIG_INVALID", `terraform.cliConfigFile: ${file} is not a file`);
    }
    return { choice: { kind: "file", file, from: "terraform.cliConfigFile" } };
  }
  if (configured?.providerMirror) {
    const mirror = configured.providerMirror;
    const packages = inputs.mirrors.get(mirror);
    if (packages === undefined) {
      throw new RunnerError("CONFIG_INVALID", `terraform.providerMirror: ${mirror} is not a folder`);
    }
    if (packages.length === 0) {
      throw new RunnerError(
        "CONFIG_INVALID",
        `terraform.providerMirror: ${mirror} holds no provider packages (expected <host>/<namespace>/<type>/<version>/<os>_<arch>/ or <host>/<namespace>/<type>/terraform-provider-<type>_<version>_<os>_<arch>.zip)`,
      );
    }
    return { choice: { kind: "mirror", mirror, packages, from: "terraform.providerMirror" } };
  }
  let ignoredEnvFile: string | undefined;
  if (isSet(envFile)) {
    if (inputs.existingFiles.has(envFile)) {
      return { choice: { kind: "file", file: envFile, from: "TF_CLI_CONFIG_FILE" } };
    }
    ignoredEnvFile = envFile;
  }
  const ignored = ignoredEnvFile === undefined ? {} : { ignoredEnvFile };
  const setupPackages = inputs.mirrors.get(inputs.setupMirror) ?? [];
  if (setupPackages.length > 0) {
    return {
      choice: { kind: "mirror", mirror: inputs.setupMirror, packages: setupPackages, from: "set-up" },
      ...ignored,
    };
  }
  return { choice: { kind: "engine-default" }, ...ignored };
}

/** A link in the runner's own mirror folder: its path there, and the mirror's package it points at. */
export interface MirrorLink {
  readonly path: string;
  readonly target: string;
}

/**
 * The links of a mirror folder that serves every package under its own host,
 * and a package of one public registry under the other one too, unless the
 * mirror has it there already. Engines look a provider up under the exact host
 * name, and follow links only at the package itself.
 */
export function mirrorLinks(mirror: string, packages: readonly MirrorPackage[]): MirrorLink[] {
  const links = new Map<string, string>();
  for (const pkg of packages) links.set(pkg.path, path.join(mirror, pkg.path));
  for (const pkg of packages) {
    const [host, ...rest] = pkg.path.split("/");
    const other = PUBLIC_REGISTRIES.find((registry) => registry !== host);
    if (!host || !other || !(PUBLIC_REGISTRIES as readonly string[]).includes(host)) continue;
    const alias = [other, ...rest].join("/");
    if (!links.has(alias)) links.set(alias, path.join(mirror, pkg.path));
  }
  return [...links].map(([linkPath, target]) => ({ path: linkPath, target })).sort(byPath);
}

/**
 * The CLI configuration for a mirror folder of the runner's: the providers it
 * holds come from it, every other one from its registry as usual.
 */
export function renderCliConfig(mirrorDir: string, links: readonly MirrorLink[]): string {
  const providers = [...new Set(links.map((link) => link.path.split("/").slice(0, 3).join("/")))].sort();
  const list = providers.map((provider) => `      ${JSON.stringify(provider)},`).join("\n");
  return [
    "# Written by gitops-runner. Providers found in the configured mirror come from",
    "# links to it in this folder; every other provider comes from its registry.",
    "provider_installation {",
    "  filesystem_mirror {",
    `    path    = ${JSON.stringify(mirrorDir)}`,
    `    include = [\n${list}\n    ]`,
    "  }",
    "  direct {",
    `    exclude = [\n${list}\n    ]`,
    "  }",
    "}",
    "disable_checkpoint = true",
    "",
  ].join("\n");
}

function isSet(value: string | undefined): value is string {
  return value !== undefined && value !== "";
}

function byPath(a: MirrorLink, b: MirrorLink): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}
