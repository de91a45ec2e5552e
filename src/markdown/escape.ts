/**
 * Markdown and HTML escaping for text the runner did not write (stack names,
 * error messages, plan text), so that it shows as written on GitHub, GitLab,
 * Gitea and Bitbucket alike.
 */

/**
 * Plain text inline (also in a table cell): Markdown's and HTML's special
 * characters escaped, on one line. Table cells get no code spans, where GFM
 * would still end the cell at a pipe.
 */
export function escapeText(text: string): string {
  return text.replace(/\s*\r?\n\s*/g, " ").replace(/[\\`*_[\]<>|~&#]/g, "\\$&");
}

/** Text inside an HTML element such as <summary>, where Markdown is not read. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (char) => HTML_ENTITIES[char] ?? char);
}

const HTML_ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
};

/** An inline code span that no backtick in the text can end. */
export function code(text: string): string {
  const flat = text.replace(/\r?\n/g, " ");
  const ticks = "`".repeat(longestBacktickRun(flat) + 1);
  const pad = flat.startsWith("`") || flat.endsWith("`") ? " " : "";
  return `${ticks}${pad}${flat}${pad}${ticks}`;
}

/** The backticks of a fence that no line of `content` can close. */
export function fenceTicks(content: string): string {
  return "`".repeat(Math.max(3, longestBacktickRun(content) + 1));
}

function longestBacktickRun(text: string): number {
  let longest = 0;
  for (const match of text.matchAll(/`+/g)) longest = Math.max(longest, match[0].length);
  return longest;
}

/** A link destination with nothing in it that ends a Markdown link early. */
export function linkTarget(url: string): string {
  return url.replace(/[\s()<>]/g, (char) =>
    char === "(" ? "%28" : char === ")" ? "%29" : encodeURIComponent(char),
  );
}
