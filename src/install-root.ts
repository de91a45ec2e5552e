import path from "node:path";

/** The folder this runner was installed in: a checkout of its repository, or an image's /app. */
export const INSTALL_ROOT = path.resolve(import.meta.dirname, "..");

/** Where a checkout's set-up (scripts/setup.sh) puts its provider filesystem mirror. */
export const SETUP_PROVIDER_MIRROR = path.join(INSTALL_ROOT, ".toolchain", "providers");
