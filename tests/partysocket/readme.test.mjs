// The README's examples, run as written against a fresh `hearth serve` (temporary data
// directory, free port), so an edit that breaks one fails the tests.
//
// Which blocks run: every fenced block of README.md whose info string is `sh` or `js`
// must say either `test` (run) or `no-test` (not run, e.g. `bash scripts/test` itself);
// the `test` blocks run in the order they appear:
// - `sh test`: with bash `-euo pipefail`, in a scratch directory; what a block exports
//   is in the environment of every block after it.
// - `js test until=<text>`: saved as example.mjs (next to this directory's node_modules,
//   so it imports the pinned partysocket and ws) and run with node until its output
//   contains <text>, then stopped; it fails if it exits or 20 s pass first.
// The one rewrite: `localhost:8787` (the default address the README uses) becomes the
// server's address.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { root, serve } from "./serve.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");
const JS_TIMEOUT_MS = 20_000;

/** The fenced blocks of `markdown`: { lang, attrs (after the language), code, line }. */
function fencedBlocks(markdown) {
  const blocks = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(/^(`{3,})\s*(\S*)\s*(.*)$/);
    if (!open) continue;
    const fence = open[1];
    const code = [];
    let j = i + 1;
    while (j < lines.length && !lines[j].startsWith(fence)) code.push(lines[j++]);
    blocks.push({ lang: open[2], attrs: open[3].trim().split(/\s+/).filter(Boolean), code: code.join("\n"), line: i + 1 });
    i = j;
  }
  return blocks;
}

const examples = fencedBlocks(readme).filter((b) => b.lang === "sh" || b.lang === "js");
const tested = examples.filter((b) => b.attrs.includes("test"));

let server;
let host;
let scratch;

before(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-readme-"));
  // No token secret, no flags but a data dir: the embedded default a reader gets.
  ({ proc: server, host } = await serve(["--data-dir", path.join(scratch, "data")]));
  fs.symlinkSync(path.join(here, "node_modules"), path.join(scratch, "node_modules"));
});

after(() => {
  server?.kill("SIGTERM");
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

test("every sh and js block of the README says whether it is run, and some are", () => {
  for (const b of examples) {
    assert.ok(
      b.attrs.includes("test") || b.attrs.includes("no-test"),
      `README.md line ${b.line}: a \`${b.lang}\` block must be marked \`test\` or \`no-test\``,
    );
  }
  assert.ok(tested.some((b) => b.lang === "sh"), "no `sh test` block in README.md");
  assert.ok(tested.some((b) => b.lang === "js"), "no `js test` block in README.md");
});

/** Runs `cmd args` in the scratch dir with `env`; resolves with { code, out } when it
 * exits, or once its output contains `until` (then it is stopped, code "until"). */
function run(cmd, args, env, { until, timeoutMs } = {}) {
  return new Promise((resolve) => {
    const proc = spawn(cmd, args, { cwd: scratch, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let done = false;
    const finish = (code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      proc.kill("SIGTERM");
      resolve({ code, out });
    };
    const timer = timeoutMs ? setTimeout(() => finish("timed out"), timeoutMs) : undefined;
    const take = (chunk) => {
      out += chunk;
      if (until && out.includes(until)) finish("until");
    };
    proc.stdout.on("data", take);
    proc.stderr.on("data", take);
    proc.on("exit", (code) => finish(code));
  });
}

test("the README's examples run as written against a fresh server", async () => {
  let env = { ...process.env };
  const envFile = path.join(scratch, "env");
  for (const b of tested) {
    const code = b.code.replaceAll("localhost:8787", host);
    const where = `README.md line ${b.line} (\`${b.lang} ${b.attrs.join(" ")}\`)`;
    if (b.lang === "sh") {
      const script = `set -euo pipefail\n${code}\nenv -0 > ${JSON.stringify(envFile)}\n`;
      const { code: status, out } = await run("bash", ["-c", script], env);
      assert.equal(status, 0, `${where} failed (exit ${status}):\n${out}`);
      env = Object.fromEntries(
        fs.readFileSync(envFile, "utf8").split("\0").filter(Boolean).map((kv) => {
          const at = kv.indexOf("=");
          return [kv.slice(0, at), kv.slice(at + 1)];
        }),
      );
    } else {
      const until = b.attrs.find((a) => a.startsWith("until="))?.slice("until=".length);
      assert.ok(until, `${where}: a js block needs until=<text>`);
      const file = path.join(scratch, "example.mjs");
      fs.writeFileSync(file, code);
      const { code: status, out } = await run("node", [file], env, { until, timeoutMs: JS_TIMEOUT_MS });
      assert.equal(status, "until", `${where} ended (${status}) before printing ${JSON.stringify(until)}:\n${out}`);
    }
  }
});
