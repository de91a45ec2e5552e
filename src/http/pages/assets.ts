import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import type { AssetNames } from "./layout.ts";

/**
 * The dashboard's assets, read once at start and served by the runner itself
 * (production networks often have no internet): its stylesheet and script,
 * its icon, and htmx from the npm package. Each is named by a hash of its
 * content, so that browsers may keep it for good.
 */
export interface Assets {
  readonly names: AssetNames;
  readonly files: ReadonlyMap<string, { readonly type: string; readonly body: Buffer }>;
}

const OWN = path.join(import.meta.dirname, "..", "assets");

export async function loadAssets(): Promise<Assets> {
  const htmx = createRequire(import.meta.url).resolve("htmx.org/dist/htmx.min.js");
  const sources = {
    css: { file: path.join(OWN, "dashboard.css"), type: "text/css; charset=utf-8" },
    js: { file: path.join(OWN, "dashboard.js"), type: "text/javascript; charset=utf-8" },
    htmx: { file: htmx, type: "text/javascript; charset=utf-8" },
    icon: { file: path.join(OWN, "icon.svg"), type: "image/svg+xml" },
  } as const;
  const files = new Map<string, { type: string; body: Buffer }>();
  const names: Record<string, string> = {};
  for (const [key, source] of Object.entries(sources)) {
    const body = await readFile(source.file);
    const hash = createHash("sha256").update(body).digest("hex").slice(0, 12);
    const extension = path.extname(source.file);
    const name = `${path.basename(source.file, extension).replace(/\.min$/, "")}-${hash}${extension}`;
    files.set(name, { type: source.type, body });
    names[key] = name;
  }
  return { names: names as unknown as AssetNames, files };
}
