import path from "node:path";
import {
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  ListBucketsCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { LocalStateBackend } from "../src/state/local-state.ts";
import { useMoto } from "./support/moto-per-file.ts";
import { primaryEngine, synthExample, tempDir, terraformCli } from "./support/toolchain.ts";

const credentials = { accessKeyId: "testing", secretAccessKey: "testing" };

/** What the runner's configuration would give these stacks: credentials and the emulator's endpoint. */
function awsEnv(endpoint: string): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_REGION: "us-east-1",
    AWS_ENDPOINT_URL: endpoint,
  };
}

describe("the AWS stacks against moto", () => {
  const motoEndpoint = useMoto();

  it("applies storage, then access through its cross-stack reference, and the bucket reads back", async () => {
    const endpoint = motoEndpoint();
    const work = await tempDir("aws");
    const location = { dataDir: path.join(work, "data"), repoId: "example-0000", appDir: "stacks/aws" };
    const { stacks } = await synthExample("aws", path.join(work, "out"));
    const terraform = await terraformCli(primaryEngine());
    const env = awsEnv(endpoint);

    for (const name of ["storage", "access"]) {
      const stack = stacks.find((candidate) => candidate.name === name);
      if (!stack) throw new Error(`no stack ${name}`);
      await new LocalStateBackend(location).prepare(stack.dir, stack.name);
      await terraform.init(stack.dir, { env });
      const planFile = path.join(work, `${name}.tfplan`);
      expect((await terraform.plan(stack.dir, planFile, { env })).hasChanges).toBe(true);
      await terraform.apply(stack.dir, planFile, { env });
      expect(
        (await terraform.plan(stack.dir, path.join(work, `${name}-again.tfplan`), { env })).hasChanges,
      ).toBe(false);
    }

    const s3 = new S3Client({ endpoint, region: "us-east-1", credentials, forcePathStyle: true });
    const { Buckets = [] } = await s3.send(new ListBucketsCommand({}));
    const bucket = Buckets.map((candidate) => candidate.Name ?? "").find((name) =>
      name.startsWith("gitops-runner-artifacts-"),
    );
    expect(bucket).toBeDefined();
    const tagging = await s3.send(new GetBucketTaggingCommand({ Bucket: bucket }));
    expect(Object.fromEntries((tagging.TagSet ?? []).map((tag) => [tag.Key, tag.Value]))).toEqual({
      project: "gitops-runner-examples",
      stack: "storage",
      purpose: "build-artifacts",
      retention: "90d",
    });
    const versioning = await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }));
    expect(versioning.Status).toBe("Enabled");
  });
});
