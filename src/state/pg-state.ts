import { createHash } from "node:crypto";
import type { StateBackend } from "../engine/context.ts";
import { type StateLocation, writeStateOverride } from "./local-state.ts";

/** Whether Terraform's pg backend holds a state in a schema; the store answers. */
export interface PgStateRecords {
  hasTerraformState(schema: string): Promise<boolean>;
}

/**
 * State in PostgreSQL, for replicas: a stack with no backend or a local one
 * uses Terraform's own `pg` backend on the runner's database, one schema per
 * repository, app folder and stack, so that any replica can plan and apply
 * it; `terraform_remote_state` reads of its producers follow. The connection
 * string reaches Terraform as PG_CONN_STR, never in a file.
 */
export class PgStateBackend implements StateBackend {
  readonly #location: Omit<StateLocation, "dataDir">;
  readonly #records: PgStateRecords;
  readonly #env: Readonly<Record<string, string>>;

  constructor(location: Omit<StateLocation, "dataDir">, connectionUrl: string, records: PgStateRecords) {
    this.#location = location;
    this.#records = records;
    this.#env = { PG_CONN_STR: connectionUrl };
  }

  async prepare(stackDir: string, stack: string) {
    const local = await writeStateOverride(stackDir, stack, {
      backend: (own) => ({ pg: { schema_name: this.schemaOf(own) } }),
      remoteState: (producer) => ({ backend: "pg", config: { schema_name: this.schemaOf(producer) } }),
    });
    return local ? { where: `PostgreSQL schema ${this.schemaOf(stack)}`, env: this.#env } : undefined;
  }

  hasState(stack: string): Promise<boolean> {
    return this.#records.hasTerraformState(this.schemaOf(stack));
  }

  schemaOf(stack: string): string {
    return pgStateSchema(this.#location, stack);
  }
}

/** A readable, valid schema name per repository, app folder and stack (at most 63 characters). */
export function pgStateSchema(location: Omit<StateLocation, "dataDir">, stack: string): string {
  const hash = createHash("sha256")
    .update(`${location.repoId}/${location.appDir || "_"}/${stack}`)
    .digest("hex")
    .slice(0, 12);
  const slug = stack
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 40);
  return `gitops_${slug}_${hash}`;
}
