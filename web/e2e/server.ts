// Starts a real `hearth serve` (HEARTH_BIN, default $CARGO_TARGET_DIR/debug/hearth) on a
// free port with a temporary data directory, serving the built app (web/dist).
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export type Server = { url: string; host: string; stop: () => Promise<void>; log: () => string };

export function hearthBin(): string {
  const target = process.env.CARGO_TARGET_DIR ?? "/var/tmp/hearth-target";
  return process.env.HEARTH_BIN ?? join(target, "debug", "hearth");
}

/** `env`: more environment for `hearth serve` (e.g. HEARTH_ACCESS_TOKEN_TTL_SECS). Orders
 * "as soon as possible" take 2 s to prepare here (HEARTH_PREP_TIME_SECS; 10 minutes by
 * default), so a test sees them become ready. */
export async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), "hearth-e2e-"));
  const webDir = fileURLToPath(new URL("../dist", import.meta.url));
  const child: ChildProcess = spawn(
    hearthBin(),
    ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--web-dir", webDir],
    {
      env: { ...process.env, HEARTH_TOKEN_SECRET: randomUUID(), RUST_LOG: process.env.RUST_LOG ?? "warn", HEARTH_PREP_TIME_SECS: "2", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const { url, output } = await listening(child, "hearth serve");
  return {
    url,
    host: new URL(url).host,
    log: output,
    stop: async () => {
      await stop(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export type Sandbox = { url: string; stop: () => Promise<void> };

/** Starts `hearth sandbox` (the bundled payment and inventory provider) on a free port. */
export async function startSandbox(): Promise<Sandbox> {
  const child: ChildProcess = spawn(hearthBin(), ["sandbox", "--listen", "127.0.0.1:0"], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { url } = await listening(child, "hearth sandbox");
  return { url, stop: () => stop(child) };
}

/** Waits for `child` (`what`, for errors) to print `listening on URL`; its stderr is kept. */
async function listening(child: ChildProcess, what: string): Promise<{ url: string; output: () => string }> {
  let output = "";
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${output}`)), 30_000);
    let buffered = "";
    child.stdout?.on("data", (d: Buffer) => {
      buffered += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(buffered);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}: ${output}`));
    });
  });
  return { url, output: () => output };
}

/** SIGTERM, then SIGKILL if `child` is still running 5 s later. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
  if (child.exitCode === null) child.kill("SIGKILL");
}
