/**
 * What the runner needs of a forge (GitHub, GitLab, Gitea or Forgejo,
 * Bitbucket Cloud), split by role. Declared here, where the pull-request
 * workflow uses it; each forge's folder implements it.
 */
export type ForgeKind = "github" | "gitlab" | "gitea" | "bitbucket";

export interface PullRequest {
  readonly number: number;
  /** As the forge reports it: Bitbucket reports 12 characters, the others the full SHA. */
  readonly headSha: string;
  readonly headRef: string;
  /** The branch the pull request merges into. */
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
  /** The pull request as it is now. */
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
  /** Who wrote it, as `Accounts.self` names the runner: a login, a username or a UUID. */
  readonly author: string;
}

export interface Comments {
  /** The pull request's comments, oldest first, without the forge's own system notes. */
  list(pullRequest: number): Promise<Comment[]>;
  create(pullRequest: number, body: string): Promise<Comment>;
  update(pullRequest: number, commentId: string, body: string): Promise<void>;
  remove(pullRequest: number, commentId: string): Promise<void>;
  /**
   * Acknowledges a comment (a command) with a reaction; undefined where the
   * forge has none (Bitbucket), and the runner replies instead.
   */
  readonly react?: (pullRequest: number, commentId: string) => Promise<void>;
}

export type CommitState = "pending" | "success" | "failure" | "error";

export interface CommitStatuses {
  /** Sets the status `context` (e.g. gitops-runner/plan) on a commit. */
  set(
    sha: string,
    status: { context: string; state: CommitState; description: string; targetUrl?: string },
  ): Promise<void>;
}

/** Who someone is to the forge: what a webhook says of a comment's author. */
export interface Account {
  /** The login, username or UUID comments are authored by. */
  readonly name: string;
  /** The forge's numeric id, where its permission API wants it (GitLab). */
  readonly id?: string;
}

export interface Accounts {
  /**
   * The account the token acts as, which writes the runner's comments;
   * undefined when the forge does not say (a Bitbucket access token).
   */
  self(): Promise<string | undefined>;
  /** Whether the account may push to the repository, as the forge reports its permission. */
  canWrite(account: Account): Promise<boolean>;
}

export interface Forge {
  readonly kind: ForgeKind;
  readonly pullRequests: PullRequests;
  readonly comments: Comments;
  readonly statuses: CommitStatuses;
  readonly accounts: Accounts;
  /** The largest comment body the forge accepts, in characters. */
  readonly maxCommentLength: number;
}
