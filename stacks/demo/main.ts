// The demo app: needs no cloud and no provider download. Terraform's built-in
// `terraform_data` resource stands in for real infrastructure, so the runner's
// whole flow (synth, plan, apply, drift) can be tried on a laptop.
import { App, DataResource, Fn, TerraformOutput, TerraformStack } from "cdktf";
import type { Construct } from "constructs";

class DemoStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);

    const release = new DataResource(this, "release", {
      input: { version: "1.0.0", channel: "stable" },
    });

    const settings = new DataResource(this, "settings", {
      input: { replicas: 2, region: "eu-west-1" },
      triggersReplace: { release: release.id },
    });

    new TerraformOutput(this, "release_id", { value: release.id });
    new TerraformOutput(this, "settings_digest", {
      value: Fn.sha256(Fn.jsonencode(settings.output)),
    });
  }
}

const app = new App();
new DemoStack(app, "demo");
app.synth();
