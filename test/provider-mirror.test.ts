import { ListBucketsCommand, S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { runCli } from "./support/cli.ts";
import { useMoto } from "./support/moto-per-file.ts";
import { dataDir } from "./support/repo.ts";

const credentials = { accessKeyId: "testing", secretAccessKey: "testing" };

describe("the README's command line on the AWS example app, from a checkout after the set-up", () => {
  const motoEndpoint = useMoto();

  it("applies every stack with no configuration, the providers from the set-up's mirror, though TF_CLI_CONFIG_FILE names nothing", async () => {
    const endpoint = motoEndpoint();
    const data = await dataDir();

    // Credentials and the emulator's endpoint the way a user gives them: in the environment.
    const applied = await runCli(
      ["apply", "--repo", ".", "--app-dir", "stacks/aws", "--data-dir", data, "--json"],
      {
        TF_CLI_CONFIG_FILE: "/nonexistent/terraformrc",
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_REGION: "us-east-1",
        AWS_ENDPOINT_URL: endpoint,
      },
    );

    expect(applied.stderr).not.toContain('"level":50');
    expect(applied.code).toBe(0);
    expect(
      Object.fromEntries(
        applied.json.stacks.map((stack: { name: string; status: string }) => [stack.name, stack.status]),
      ),
    ).toEqual({ storage: "applied", messaging: "applied", access: "applied" });
    const s3 = new S3Client({ endpoint, region: "us-east-1", credentials, forcePathStyle: true });
    const { Buckets = [] } = await s3.send(new ListBucketsCommand({}));
    expect(Buckets.some((bucket) => bucket.Name?.startsWith("gitops-runner-artifacts-"))).toBe(true);
  });
});
