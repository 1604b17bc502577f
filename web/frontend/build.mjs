// Bundles the dashboard's scripts (src/*.js) with their npm dependencies into
// web/static/web/dist/ (git-ignored; `make` runs this after `npm ci`).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";

const out = new URL("../static/web/dist/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });
await build({
  entryPoints: readdirSync("src").filter((f) => f.endsWith(".js")).map((f) => `src/${f}`),
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "iife",
  target: ["chrome110", "firefox110", "safari16"],
  outdir: out,
  logLevel: "warning",
});
copyFileSync("node_modules/uplot/dist/uPlot.min.css", `${out}uPlot.min.css`);
