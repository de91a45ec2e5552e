import { writeFile } from "node:fs/promises";
import path from "node:path";
import {
  GetBucketTaggingCommand,
  ListBucketsCommand,
  PutBucketTaggingCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { runCli } from "./support/cli.ts";
import { useMoto } from "./support/moto-per-file.ts";
import { dataDir, TestRepo } from "./support/repo.ts";

const credentials = { accessKeyId: "testing", secretAccessKey: "testing" };

async function bucketTags(s3: S3Client, bucket: string): Promise<Record<string, string | undefined>> {
  const { TagSet = [] } = await s3.send(new GetBucketTaggingCommand({ Bucket: bucket }));
  return Object.fromEntries(TagSet.map((tag) => [tag.Key, tag.Value]));
}

describe("drift against an AWS API emulator", () => {
  const motoEndpoint = useMoto();

  it("finds a bucket retagged out of band, names the attribute, corrects it, then finds nothing", async () => {
    const endpoint = motoEndpoint();
    const repo = await TestRepo.fromExample("aws");
    const data = await dataDir();
    // The runner's configuration, not the repository, carries credentials and the endpoint.
    const config = path.join(data, "runner.json");
    await writeFile(
      config,
      JSON.stringify({
        env: {
          AWS_ACCESS_KEY_ID: credentials.accessKeyId,
          AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
          AWS_REGION: "us-east-1",
          AWS_ENDPOINT_URL: endpoint,
        },
      }),
    );
    const common = ["--repo", repo.dir, "--data-dir", data, "--config", config, "--json"];

    const applied = await runCli(["apply", ...common, "--stack", "storage"]);
    expect(applied.code).toBe(0);
    expect(applied.json.stacks.find((stack: { name: string }) => stack.name === "storage").status).toBe(
      "applied",
    );

    const s3 = new S3Client({ endpoint, region: "us-east-1", credentials, forcePathStyle: true });
    const { Buckets = [] } = await s3.send(new ListBucketsCommand({}));
    const bucket = Buckets.map((candidate) => candidate.Name ?? "").find((name) =>
      name.startsWith("gitops-runner-artifacts-"),
    );
    if (!bucket) throw new Error("the storage stack created no bucket");
    const original = await bucketTags(s3, bucket);
    await s3.send(
      new PutBucketTaggingCommand({
        Bucket: bucket,
        Tagging: {
          TagSet: Object.entries({ ...original, purpose: "changed-by-hand" }).map(([Key, Value]) => ({
            Key,
            Value,
          })),
        },
      }),
    );

    const drift = await runCli(["drift", ...common]);
    expect(drift.code).toBe(2);
    const storage = drift.json.stacks.find((stack: { name: string }) => stack.name === "storage");
    expect(storage.status).toBe("drifted");
    expect(storage.pending).toBeUndefined();
    expect(storage.resources).toEqual([
      {
        address: "aws_s3_bucket.artifacts",
        actions: ["update"],
        drift: expect.arrayContaining(["tags.purpose"]),
      },
    ]);
    expect(drift.json.stacks.find((stack: { name: string }) => stack.name === "access")).toMatchObject({
      status: "skipped",
      reason: "never applied",
    });

    const corrected = await runCli(["drift", ...common, "--correct"]);
    expect(corrected.code).toBe(0);
    expect(corrected.json.stacks.find((stack: { name: string }) => stack.name === "storage").status).toBe(
      "corrected",
    );
    expect(await bucketTags(s3, bucket)).toEqual(original);

    const again = await runCli(["drift", ...common]);
    expect(again.code).toBe(0);
    expect(again.json.stacks.find((stack: { name: string }) => stack.name === "storage").status).toBe(
      "no-changes",
    );
  });
});
