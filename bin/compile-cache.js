// Node's compile cache for the runner's own TypeScript: Node 24 strips types
// with a WebAssembly transformer that, once loaded, keeps about 17 MB of memory
// for the life of the process, and does the work again at every start. With
// the cache, a start after the first reads the stripped sources and V8's
// compiled code from disk and never loads the transformer. A JavaScript file,
// so that it runs before any TypeScript is loaded.
import { enableCompileCache } from "node:module";
import { homedir } from "node:os";
import path from "node:path";

/**
 * Turns the cache on: where NODE_COMPILE_CACHE says (Node has then done it
 * at start), else in the user's cache folder. A folder it cannot create or
 * write leaves the runner working as before, only without the cache.
 */
export function useCompileCache() {
  if (process.env.NODE_COMPILE_CACHE) return;
  const base = process.env.XDG_CACHE_HOME || path.join(homedir(), ".cache");
  enableCompileCache(path.join(base, "gitops-runner", "node-compile-cache"));
}
