// Builds the web app into the folder given as the only argument (the
// committed bundle is ../gateway/web/dist). The output depends only on the
// sources and the pinned esbuild: no timestamps, no source maps, no hashes of
// paths, so `make check-web` can compare a fresh build byte for byte.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out || process.argv.length > 3) {
  console.error("usage: node build.mjs OUTDIR");
  process.exit(2);
}
const outdir = resolve(out);

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

await build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.ts", style: "src/app.css" },
  outdir,
  bundle: true,
  format: "esm",
  target: ["es2022", "chrome120", "firefox128", "safari17"],
  minify: true,
  charset: "utf8",
  legalComments: "eof",
  sourcemap: false,
  logLevel: "warning",
});

for (const f of ["index.html", "favicon.svg"]) {
  copyFileSync(join(here, "src", f), join(outdir, f));
}
