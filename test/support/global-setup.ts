import type { TestProject } from "vitest/node";
import { startMoto } from "./moto.ts";

declare module "vitest" {
  export interface ProvidedContext {
    motoEndpoint: string;
  }
}

/** One AWS API emulator (moto's server mode) on a free loopback port for the whole run. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const motoServer = process.env.GITOPS_RUNNER_TEST_MOTO_SERVER;
  if (!motoServer) {
    throw new Error("GITOPS_RUNNER_TEST_MOTO_SERVER is not set: run the tests with `npm test`");
  }
  const moto = await startMoto(motoServer);
  project.provide("motoEndpoint", moto.endpoint);
  return () => moto.stop();
}
