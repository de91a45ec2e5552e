// Builds the AWS provider at release v5.100.0 (commit f7a3b98da589, the tag's
// commit) when no provider filesystem mirror carries it. The provider's module
// path has no /v5 suffix, so only a commit pseudo-version names the release, and
// its go.mod replaces terraform-plugin-log, which `go install pkg@version`
// refuses; this module repeats that replace. scripts/setup.sh runs
// `go mod tidy` here before the build, since go.sum depends on what the proxy
// serves.
module gitops-runner/toolchain/aws-provider

go 1.24

require github.com/hashicorp/terraform-provider-aws v1.60.1-0.20250612171449-f7a3b98da589

replace github.com/hashicorp/terraform-plugin-log => github.com/gdavison/terraform-plugin-log v0.0.0-20230928191232-6c653d8ef8fb
