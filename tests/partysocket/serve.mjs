// Starts the built `hearth serve` for the tests in this directory.
//
// HEARTH_BIN names the binary; by default $CARGO_TARGET_DIR/debug/hearth
// (or target/debug/hearth at the repository root). Build it first: cargo build -p hearth.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const root = path.resolve(here, "..", "..");
/** The `hearth` binary the tests run. */
export const bin =
  process.env.HEARTH_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, "target"), "debug", "hearth");

/**
 * Starts `hearth serve --listen 127.0.0.1:0` with `args` after it and `env` added to the
 * environment; resolves with the process and the host:port it printed.
 */
export async function serve(args, env = {}) {
  const proc = spawn(bin, ["serve", "--listen", "127.0.0.1:0", ...args], {
    env: { ...process.env, RUST_LOG: "warn", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const host = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${bin} did not start: ${out}`)), 15000);
    proc.on("error", reject);
    proc.on("exit", (code) => reject(new Error(`${bin} exited with ${code}: ${out}`)));
    proc.stdout.on("data", (chunk) => {
      out += chunk;
      const m = out.match(/listening on http:\/\/(\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  return { proc, host };
}
