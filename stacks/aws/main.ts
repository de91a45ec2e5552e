// Example AWS stacks. Region and tags live here; credentials and endpoints do
// not: they come from the runner's configuration (environment) per stack.
// Imports are deep on purpose: the barrel import of @cdktf/provider-aws costs
// about nine times the synth time and eight times the memory.
import { IamPolicy } from "@cdktf/provider-aws/lib/iam-policy/index.js";
import { IamRole } from "@cdktf/provider-aws/lib/iam-role/index.js";
import { IamRolePolicyAttachment } from "@cdktf/provider-aws/lib/iam-role-policy-attachment/index.js";
import { AwsProvider } from "@cdktf/provider-aws/lib/provider/index.js";
import { S3Bucket } from "@cdktf/provider-aws/lib/s3-bucket/index.js";
import { S3BucketVersioningA } from "@cdktf/provider-aws/lib/s3-bucket-versioning/index.js";
import { SqsQueue } from "@cdktf/provider-aws/lib/sqs-queue/index.js";
import { App, Fn, TerraformOutput, TerraformStack } from "cdktf";
import type { Construct } from "constructs";

const region = "us-east-1";

function awsProvider(scope: Construct, stack: string): AwsProvider {
  return new AwsProvider(scope, "aws", {
    region,
    defaultTags: [{ tags: { project: "gitops-runner-examples", stack } }],
  });
}

class StorageStack extends TerraformStack {
  readonly bucket: S3Bucket;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    awsProvider(this, id);

    this.bucket = new S3Bucket(this, "artifacts", {
      bucketPrefix: "gitops-runner-artifacts-",
      forceDestroy: false,
      tags: { purpose: "build-artifacts", retention: "90d" },
    });
    new S3BucketVersioningA(this, "artifacts-versioning", {
      bucket: this.bucket.id,
      versioningConfiguration: { status: "Enabled" },
    });

    new TerraformOutput(this, "bucket_name", { value: this.bucket.bucket });
  }
}

class MessagingStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    awsProvider(this, id);

    const deadLetters = new SqsQueue(this, "jobs-dlq", {
      name: "gitops-runner-jobs-dlq",
      messageRetentionSeconds: 1_209_600,
    });
    const jobs = new SqsQueue(this, "jobs", {
      name: "gitops-runner-jobs",
      visibilityTimeoutSeconds: 60,
      redrivePolicy: Fn.jsonencode({ deadLetterTargetArn: deadLetters.arn, maxReceiveCount: 5 }),
    });

    new TerraformOutput(this, "queue_url", { value: jobs.url });
  }
}

// Depends on StorageStack through a cross-stack reference: the bucket's ARN
// becomes a remote-state lookup, so this stack is planned for real only after
// storage has been applied.
class AccessStack extends TerraformStack {
  constructor(scope: Construct, id: string, bucket: S3Bucket) {
    super(scope, id);
    awsProvider(this, id);

    const role = new IamRole(this, "uploader", {
      name: "gitops-runner-artifact-uploader",
      assumeRolePolicy: Fn.jsonencode({
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Action: "sts:AssumeRole", Principal: { Service: "ec2.amazonaws.com" } },
        ],
      }),
    });
    const policy = new IamPolicy(this, "upload-artifacts", {
      name: "gitops-runner-upload-artifacts",
      policy: Fn.jsonencode({
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Action: ["s3:PutObject", "s3:GetObject"], Resource: `${bucket.arn}/*` },
        ],
      }),
    });
    new IamRolePolicyAttachment(this, "uploader-upload-artifacts", {
      role: role.name,
      policyArn: policy.arn,
    });

    new TerraformOutput(this, "role_arn", { value: role.arn });
  }
}

const app = new App();
const storage = new StorageStack(app, "storage");
new MessagingStack(app, "messaging");
new AccessStack(app, "access", storage.bucket);
app.synth();
