/** What a review says, as far as approval goes. */
export type Verdict = "approves" | "withdraws" | undefined;

/**
 * The reviewers whose latest deciding review approves, in the order they
 * first decided: a later request for changes or a dismissal withdraws an
 * approval; a comment decides nothing. Each forge says how its reviews read.
 */
export function approvedBy<T>(
  reviews: readonly T[],
  read: (review: T) => { readonly login: string | undefined; readonly verdict: Verdict },
): string[] {
  const latest = new Map<string, boolean>();
  for (const review of reviews) {
    const { login, verdict } = read(review);
    if (login !== undefined && verdict !== undefined) latest.set(login, verdict === "approves");
  }
  return [...latest].filter(([, approves]) => approves).map(([login]) => login);
}
