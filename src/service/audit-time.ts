import { RunnerError } from "../errors.ts";

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * A bound of an audit query as the store compares it (an ISO time in UTC): a
 * date (`2026-03-01`, the whole day: its start for `since`, its end for
 * `until`) or a date and time with its zone. Anything else is refused, naming
 * the field.
 */
export function auditBound(text: string, bound: "since" | "until"): string {
  if (DATE.test(text)) {
    const day = Date.parse(`${text}T00:00:00Z`);
    if (!Number.isNaN(day)) {
      return new Date(bound === "since" ? day : day + 86_400_000 - 1).toISOString();
    }
  } else if (DATE_TIME.test(text)) {
    const at = Date.parse(text);
    if (!Number.isNaN(at)) return new Date(at).toISOString();
  }
  throw new RunnerError(
    "BAD_REQUEST",
    `${bound}: ${JSON.stringify(text)} is not a date (2026-03-01) or a date and time with its zone (2026-03-01T12:00:00Z)`,
  );
}
