import { afterAll, beforeAll } from "vitest";
import { startMoto } from "./moto.ts";

/**
 * An AWS API emulator of this test file's own, on a free loopback port: IAM
 * and SQS names are account-wide, so files running at once must not share one.
 * Returns a function giving its endpoint once it runs.
 */
export function useMoto(): () => string {
  let endpoint: string | undefined;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const binary = process.env.GITOPS_RUNNER_TEST_MOTO_SERVER;
    if (!binary) throw new Error("GITOPS_RUNNER_TEST_MOTO_SERVER is not set: run the tests with `npm test`");
    const moto = await startMoto(binary);
    endpoint = moto.endpoint;
    stop = () => moto.stop();
  });
  afterAll(() => stop?.());
  return () => {
    if (!endpoint) throw new Error("moto is not running");
    return endpoint;
  };
}
