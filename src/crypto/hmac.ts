import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { RunnerError } from "../errors.ts";

/**
 * HMAC-SHA256 over a raw body: the one way the runner signs (notifications)
 * and checks (webhooks) a body. A header carries the hex digest either behind
 * `sha256=` (this runner's own headers, GitHub's X-Hub-Signature-256,
 * Bitbucket's X-Hub-Signature) or bare (Gitea's X-Gitea-Signature). Forges
 * that send a shared token instead (GitLab's X-Gitlab-Token) are checked with
 * `sameSecret`.
 */
export type SignatureForm = "sha256=" | "bare";

const HEX_DIGEST = /^[0-9a-f]{64}$/i;

/** The hex HMAC-SHA256 of the exact body bytes. */
export function signSha256(secret: string, body: string | Buffer): string {
  return createHmac("sha256", secret).update(body).digest("hex");
}

/** The `sha256=<hex>` header value that signs this body. */
export function sha256Header(secret: string, body: string | Buffer): string {
  return `sha256=${signSha256(secret, body)}`;
}

/** Whether `presentedHex` is the body's HMAC-SHA256 under `secret`; the digests are compared in constant time. */
export function verifySha256(secret: string, body: string | Buffer, presentedHex: string): boolean {
  if (!HEX_DIGEST.test(presentedHex)) return false;
  const expected = createHmac("sha256", secret).update(body).digest();
  return timingSafeEqual(Buffer.from(presentedHex, "hex"), expected);
}

/** The hex digest a signature header carries; undefined when it is missing, repeated or not of the form. */
export function signatureOf(
  value: string | readonly string[] | undefined,
  form: SignatureForm,
): string | undefined {
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  const hex = form === "bare" ? text : /^sha256=(.*)$/i.exec(text)?.[1];
  return hex !== undefined && HEX_DIGEST.test(hex) ? hex : undefined;
}

/** Checks a signature header against the raw body; throws SIGNATURE_INVALID naming the header. */
export function checkSignatureHeader(check: {
  readonly secret: string;
  readonly body: Buffer;
  /** The header's name, lower case, as the error message shows it. */
  readonly header: string;
  readonly value: string | readonly string[] | undefined;
  readonly form: SignatureForm;
}): void {
  const hex = signatureOf(check.value, check.form);
  if (hex === undefined) {
    const shape = check.form === "bare" ? "<hex>" : "sha256=<hex>";
    throw new RunnerError("SIGNATURE_INVALID", `${check.header}: missing or not "${shape}"`);
  }
  if (!verifySha256(check.secret, check.body, hex)) {
    throw new RunnerError("SIGNATURE_INVALID", `${check.header}: does not match the body`);
  }
}

/**
 * Whether a presented secret (a token) equals the expected one, in constant time:
 * both are hashed first, so neither their content nor their lengths show in timing.
 */
export function sameSecret(presented: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(presented), digest(expected));
}
