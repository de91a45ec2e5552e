/**
 * Whether the Accept header ranks text/html above application/json. Each
 * type's quality comes from the most specific range that matches it (RFC 9110,
 * 12.5.1); a tie, as with `*\/*` or no header, answers JSON.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const ranges = accept.split(",").flatMap((part) => {
    const [range = "", ...params] = part.split(";").map((piece) => piece.trim().toLowerCase());
    const [type, subtype] = range.split("/");
    if (!type || !subtype) return [];
    const qParam = params.find((param) => param.startsWith("q="));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    return [{ type, subtype, q: Number.isFinite(q) ? Math.min(Math.max(q, 0), 1) : 0 }];
  });
  const quality = (type: string, subtype: string): number => {
    let best = { specificity: -1, q: 0 };
    for (const range of ranges) {
      const specificity =
        range.type === type && range.subtype === subtype
          ? 2
          : range.type === type && range.subtype === "*"
            ? 1
            : range.type === "*" && range.subtype === "*"
              ? 0
              : -1;
      if (specificity > best.specificity) best = { specificity, q: range.q };
    }
    return best.q;
  };
  return quality("text", "html") > quality("application", "json");
}
