/**
 * Errors the runner raises carry a stable `code` to match on (never the message
 * text) and the `cause` they wrap.
 */
export type ErrorCode =
  | "EXEC_FAILED"
  | "EXEC_TIMEOUT"
  | "EXEC_CANCELLED"
  | "EXEC_NOT_FOUND"
  | "SYNTH_CONFIG_INVALID"
  | "SYNTH_FAILED"
  | "SYNTH_MANIFEST_INVALID"
  | "TERRAFORM_FAILED"
  | "TERRAFORM_LOCKED"
  | "TERRAFORM_OUTPUT_INVALID"
  | "ENGINE_NOT_FOUND"
  | "POLICY_INVALID"
  | "POLICY_CHECK_FAILED"
  | "GIT_UNREACHABLE"
  | "GIT_REF_UNKNOWN"
  | "GIT_FAILED"
  | "DEPENDENCIES_FAILED"
  | "STACK_UNKNOWN"
  | "STACK_LOCKED"
  | "STATE_MISSING"
  | "COMMIT_OLDER_THAN_APPLIED"
  | "COMMIT_NOT_APPLIED"
  | "NOTHING_TO_ROLL_BACK"
  | "CONFIG_INVALID"
  | "USAGE"
  | "RUN_NOT_FOUND"
  | "RUN_NOT_BLOCKED"
  | "RUN_NOT_CANCELLABLE"
  | "RUN_APPLYING"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "BAD_REQUEST"
  | "SIGNATURE_INVALID"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "FORGE_UNAUTHORIZED"
  | "FORGE_NOT_FOUND"
  | "FORGE_FAILED"
  | "DATA_DIR_IN_USE"
  | "STORE_SCHEMA_NEWER"
  | "STORE_UNREACHABLE"
  | "INTERNAL";

export class RunnerError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RunnerError";
    this.code = code;
  }
}

export function isRunnerError(error: unknown, code?: ErrorCode): error is RunnerError {
  return error instanceof RunnerError && (code === undefined || error.code === code);
}
