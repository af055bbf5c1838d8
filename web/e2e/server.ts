// Starts a real `hearth serve` (HEARTH_BIN, default $CARGO_TARGET_DIR/debug/hearth) on a
// free port with a temporary data directory, serving the built app (web/dist); and, for the
// tests on Temporal, a real Temporal dev server (the `temporal` CLI) and `hearth worker`.
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Every child started here, killed if the test process exits without stopping it. */
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) if (child.exitCode === null) child.kill("SIGKILL");
});

export type Server = { url: string; host: string; dataDir: string; stop: () => Promise<void>; log: () => string };

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
    dataDir,
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

export type Temporal = { address: string; stop: () => Promise<void> };

/** Starts `temporal server start-dev` (headless, its own SQLite file) on free loopback
 * ports and waits until its frontend reports SERVING. */
export async function startTemporal(): Promise<Temporal> {
  const port = await freePort();
  const uiPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "hearth-e2e-temporal-"));
  const address = `127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    "temporal",
    ["server", "start-dev", "--ip", "127.0.0.1", "--port", `${port}`, "--ui-port", `${uiPort}`, "--headless"]
      .concat(["--db-filename", join(dir, "temporal.db"), "--log-level", "warn"]),
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  running.add(child);
  let output = "";
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const stopAll = async () => {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  };
  // The server prints nothing when it is ready, so its readiness is the CLI's own health
  // check, asked every 250 ms as the Rust tests' DevServer does, for at most 60 s.
  const deadline = Date.now() + 60_000;
  while (!(await serving(address))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopAll();
      throw new Error(`the Temporal dev server did not start at ${address}: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { address, stop: stopAll };
}

function serving(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile("temporal", ["operator", "cluster", "health", "--address", address], (error, stdout) =>
      resolve(!error && stdout.includes("SERVING")),
    );
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

export type Worker = { stop: () => Promise<void>; log: () => string };

/** Starts `hearth worker` on `server`'s data directory: the Temporal worker of the
 * fulfilment workflow, its activities calling `providersUrl` (the server relays the jobs). */
export function startWorker(opts: { server: Server; temporal: Temporal; taskQueue: string; providersUrl: string }): Worker {
  const args = ["worker", "--data-dir", opts.server.dataDir, "--no-relay", "--temporal-address", `http://${opts.temporal.address}`]
    .concat(["--task-queue", opts.taskQueue, "--providers-url", opts.providersUrl]);
  const child: ChildProcess = spawn(hearthBin(), args, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  running.add(child);
  let output = "";
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  return { stop: () => stop(child), log: () => output };
}

/** Waits for `child` (`what`, for errors) to print `listening on URL`; its stderr is kept. */
async function listening(child: ChildProcess, what: string): Promise<{ url: string; output: () => string }> {
  running.add(child);
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
  running.delete(child);
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
  if (child.exitCode === null) child.kill("SIGKILL");
}
