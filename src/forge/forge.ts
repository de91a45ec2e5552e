/**
 * What the runner needs of a forge (GitHub, GitLab), split by role. Declared
 * here, where the pull-request workflow uses it; implementations live beside it.
 */
export interface PullRequest {
  readonly number: number;
  readonly headSha: string;
  readonly headRef: string;
  readonly baseRef: string;
  /** The head lives in another repository (a fork). */
  readonly fromFork: boolean;
  readonly state: "open" | "closed" | "merged";
  readonly mergeCommitSha?: string;
  readonly url: string;
  /** Who opened it, and who merged it (a merged one fetched alone), as the forge names them. */
  readonly author?: string;
  readonly mergedBy?: string;
}

export interface PullRequests {
  listOpen(): Promise<PullRequest[]>;
  get(number: number): Promise<PullRequest>;
  /** Who approved it, as the forge reports it now (for the audit trail). */
  approvers(number: number): Promise<string[]>;
  /** Opens a pull request of `head` into `base` (a rollback's branch). */
  create(request: {
    readonly head: string;
    readonly base: string;
    readonly title: string;
    readonly body: string;
  }): Promise<PullRequest>;
}

export interface Comment {
  readonly id: string;
  readonly body: string;
}

export interface Comments {
  /** Comments on the pull request whose body contains the marker, oldest first. */
  findByMarker(pullRequest: number, marker: string): Promise<Comment[]>;
  create(pullRequest: number, body: string): Promise<Comment>;
  update(pullRequest: number, commentId: string, body: string): Promise<void>;
  remove(pullRequest: number, commentId: string): Promise<void>;
}

export type CommitState = "pending" | "success" | "failure" | "error";

export interface CommitStatuses {
  /** Sets the status `context` (e.g. gitops-runner/plan) on a commit. */
  set(
    sha: string,
    status: { context: string; state: CommitState; description: string; targetUrl?: string },
  ): Promise<void>;
}

export interface Forge {
  readonly kind: "github" | "gitlab";
  readonly pullRequests: PullRequests;
  readonly comments: Comments;
  readonly statuses: CommitStatuses;
  /** The largest comment body the forge accepts, in characters. */
  readonly maxCommentLength: number;
}
