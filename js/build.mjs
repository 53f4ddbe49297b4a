// Builds the tag the collector serves: one minified classic script, no runtime dependencies.
// `node build.mjs` writes it; `node build.mjs --check` exits 1 when the committed file is not
// what the sources build to (the test suite runs this).
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = new URL("..", import.meta.url);
const out = new URL("src/streamlearn/collector/static/streamlearn.js", root);
const version = /^version = "([^"]+)"/m.exec(readFileSync(new URL("pyproject.toml", root), "utf8"))[1];

const result = await build({
  entryPoints: [new URL("src/index.js", import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  define: { __VERSION__: JSON.stringify(version) },
  banner: { js: `/*! streamlearn.js ${version} | Apache-2.0 | docs/browser.md */` },
  legalComments: "none",
  write: false,
});
const built = result.outputFiles[0].text;
if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = readFileSync(out, "utf8");
  } catch {}
  if (committed !== built) {
    console.error(`${out.pathname} is not the build of js/src: run \`node js/build.mjs\``);
    process.exit(1);
  }
} else {
  writeFileSync(out, built);
}
console.log(
  `streamlearn.js ${version}: ${built.length} bytes, ${gzipSync(built, { level: 9 }).length} gzipped`,
);
