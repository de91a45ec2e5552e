export type NotificationKind =
  | "apply-failed"
  | "run-blocked"
  | "drift-found"
  | "drift-changed"
  | "drift-corrected";

/** How each kind reads in a headline, e.g. "drift found in stack network". */
export const KIND_WORDS: Readonly<Record<NotificationKind, string>> = {
  "apply-failed": "apply failed",
  "run-blocked": "run blocked",
  "drift-found": "drift found",
  "drift-changed": "drift changed",
  "drift-corrected": "drift corrected",
};

export interface NotifiedResource {
  readonly address: string;
  readonly actions: readonly string[];
  /** Drifted attribute paths. */
  readonly drift?: readonly string[];
}

export interface Notification {
  readonly kind: NotificationKind;
  /** The repository address, credentials already stripped by the caller. */
  readonly repository: string;
  readonly stack: string;
  readonly commit: string;
  readonly runId: string;
  /** One line, e.g. "aws_s3_bucket.artifacts: tags.purpose drifted". */
  readonly summary: string;
  readonly resources?: readonly NotifiedResource[];
  /** Link to the run in the dashboard. */
  readonly url?: string;
  /** ISO time. */
  readonly at: string;
}
