/**
 * The hidden first line of each comment the runner keeps on a pull request.
 * Two runners on one repository (for two environments) use two names, so
 * each finds and edits only its own comments.
 */
export interface CommentMarkers {
  readonly plan: string;
  readonly apply: string;
}

export const DEFAULT_MARKER_NAME = "gitops-runner";

export function commentMarkers(name: string = DEFAULT_MARKER_NAME): CommentMarkers {
  return { plan: `<!-- ${name}:plan -->`, apply: `<!-- ${name}:apply -->` };
}
