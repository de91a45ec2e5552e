import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  checkSignatureHeader,
  type SignatureForm,
  sameSecret,
  sha256Header,
  signatureOf,
  signSha256,
  verifySha256,
} from "../src/crypto/hmac.ts";
import { isRunnerError } from "../src/errors.ts";

const SECRET = "hmac-secret-7c1e";
const body = JSON.stringify({ kind: "drift-found", stack: "storage" });
/** Written apart from the code under test. */
const reference = createHmac("sha256", SECRET).update(body).digest("hex");

function refusal(value: string | string[] | undefined, form: SignatureForm, signed = body): string {
  try {
    checkSignatureHeader({
      secret: SECRET,
      body: Buffer.from(signed),
      header: "x-test-signature",
      value,
      form,
    });
  } catch (error) {
    if (isRunnerError(error, "SIGNATURE_INVALID")) return error.message;
    throw error;
  }
  return "accepted";
}

describe("signing", () => {
  it("is the hex HMAC-SHA256 of the body bytes, the same for a string and its Buffer", () => {
    expect(signSha256(SECRET, body)).toBe(reference);
    expect(signSha256(SECRET, Buffer.from(body))).toBe(reference);
    expect(sha256Header(SECRET, body)).toBe(`sha256=${reference}`);
  });
});

describe("verifying", () => {
  it("accepts the digest of the exact body, in either case of hex", () => {
    expect(verifySha256(SECRET, body, reference)).toBe(true);
    expect(verifySha256(SECRET, Buffer.from(body), reference.toUpperCase())).toBe(true);
  });

  it("rejects another secret, a body altered after signing, and digests that are not 64 hex digits", () => {
    expect(verifySha256("another secret", body, reference)).toBe(false);
    expect(verifySha256(SECRET, body.replace("storage", "network"), reference)).toBe(false);
    expect(verifySha256(SECRET, `${body} `, reference)).toBe(false);
    for (const malformed of [
      "",
      reference.slice(0, -1),
      reference.slice(0, -2),
      `${reference}00`,
      "zz".repeat(32),
    ]) {
      expect(verifySha256(SECRET, body, malformed), malformed).toBe(false);
    }
  });
});

describe("signature headers", () => {
  it('reads "sha256=<hex>" and bare hex, each only in its own form', () => {
    expect(signatureOf(`sha256=${reference}`, "sha256=")).toBe(reference);
    expect(signatureOf(` SHA256=${reference} `, "sha256=")).toBe(reference);
    expect(signatureOf(reference, "bare")).toBe(reference);
    expect(signatureOf(reference, "sha256=")).toBeUndefined();
    expect(signatureOf(`sha256=${reference}`, "bare")).toBeUndefined();
    expect(signatureOf(`sha1=${reference.slice(0, 40)}`, "sha256=")).toBeUndefined();
    expect(signatureOf("sha256=", "sha256=")).toBeUndefined();
    expect(signatureOf(undefined, "bare")).toBeUndefined();
    // A repeated header arrives as a list: which one is meant is not clear, so none is.
    expect(signatureOf([`sha256=${reference}`], "sha256=")).toBeUndefined();
  });

  it("accepts a correct header and refuses the others, naming the header", () => {
    expect(refusal(`sha256=${reference}`, "sha256=")).toBe("accepted");
    expect(refusal(reference, "bare")).toBe("accepted");
    expect(refusal(undefined, "sha256=")).toBe('x-test-signature: missing or not "sha256=<hex>"');
    expect(refusal(`sha256=${reference}`, "bare")).toBe('x-test-signature: missing or not "<hex>"');
    expect(refusal(sha256Header("another secret", body), "sha256=")).toBe(
      "x-test-signature: does not match the body",
    );
    expect(refusal(reference, "bare", `${body}\n`)).toBe("x-test-signature: does not match the body");
  });
});

describe("shared tokens", () => {
  it("match only exactly, whatever their lengths", () => {
    expect(sameSecret(SECRET, SECRET)).toBe(true);
    expect(sameSecret(SECRET.slice(0, -1), SECRET)).toBe(false);
    expect(sameSecret(`${SECRET}x`, SECRET)).toBe(false);
    expect(sameSecret("", SECRET)).toBe(false);
  });
});
