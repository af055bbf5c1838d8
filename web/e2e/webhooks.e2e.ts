// Provider events end to end, in Debian's Chromium against a real `hearth serve` whose
// provider is a real `hearth sandbox`: an order is confirmed and waits for its ready time;
// the sandbox reports the stock lost through the signed inventory webhook
// (docs/webhooks.md); the member's board shows the order rejected, then refunded. Once on
// the embedded executor; once on Temporal: a real dev server, `serve` relaying the jobs and
// `hearth worker` running the fulfilment workflow, which the rejection wakes from its
// ready-at timer to refund.
import { chromium } from "playwright-core";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { toZonedInput } from "../src/format";
import { startSandbox, startServer, startTemporal, startWorker } from "./server";
import type { Sandbox, Server } from "./server";

const PAYMENTS_SECRET = "e2e-payments-webhook-secret-0123456789";
const INVENTORY_SECRET = "e2e-inventory-webhook-secret-012345678";
const ZONE = "Europe/Berlin";

let browser: Browser;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--no-first-run"],
  });
});

afterAll(async () => {
  await browser?.close();
});

/** A `hearth serve` whose provider is a `hearth sandbox` that sends it signed events. */
type Setup = { server: Server; sandbox: Sandbox; stop: () => Promise<void> };

const webhookEnv = (sandbox: Sandbox) => ({
  HEARTH_PROVIDERS_URL: sandbox.url,
  HEARTH_PAYMENTS_WEBHOOK_SECRET: PAYMENTS_SECRET,
  HEARTH_INVENTORY_WEBHOOK_SECRET: INVENTORY_SECRET,
});

/** Points the sandbox's events at `server`. */
async function connect(sandbox: Sandbox, server: Server): Promise<void> {
  const set = await fetch(`${sandbox.url}/admin/webhook`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ url: server.url, paymentsSecret: PAYMENTS_SECRET, inventorySecret: INVENTORY_SECRET }),
  });
  expect(set.status).toBe(200);
}

async function embedded(): Promise<Setup> {
  const sandbox = await startSandbox();
  const server = await startServer(webhookEnv(sandbox));
  await connect(sandbox, server);
  return {
    server,
    sandbox,
    stop: async () => {
      await server.stop();
      await sandbox.stop();
    },
  };
}

async function onTemporal(): Promise<Setup> {
  const temporal = await startTemporal();
  const sandbox = await startSandbox();
  const taskQueue = `hearth-e2e-${randomUUID()}`;
  const server = await startServer({
    ...webhookEnv(sandbox),
    HEARTH_TEMPORAL_ADDRESS: `http://${temporal.address}`,
    HEARTH_TEMPORAL_TASK_QUEUE: taskQueue,
  });
  const worker = startWorker({ server, temporal, taskQueue, providersUrl: sandbox.url });
  await connect(sandbox, server);
  return {
    server,
    sandbox,
    stop: async () => {
      await worker.stop();
      await server.stop();
      await sandbox.stop();
      await temporal.stop();
    },
  };
}

const order = (page: Page, note: string) => page.getByTestId("order").filter({ hasText: note });
const withStatus = (page: Page, note: string, status: string) =>
  order(page, note).and(page.locator(`[data-status="${status}"]`)).waitFor({ timeout: 30_000 });

describe.each([
  ["the embedded executor", embedded],
  ["Temporal", onTemporal],
])("a provider's webhook, on %s", (_, start) => {
  let setup: Setup;
  beforeAll(async () => {
    setup = await start();
  });
  afterAll(async () => {
    await setup?.stop();
  });

  it("shows a confirmed order rejected and refunded when the shop reports its stock lost", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, baseURL: setup.server.url, timezoneId: ZONE });
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto("/");
    await page.getByLabel("Household name").fill("Webhook Home");
    await page.getByLabel("Your name").fill("Ann");
    await page.getByRole("button", { name: "Create household" }).click();
    await page.locator('[data-testid="connection"][data-live="true"]').waitFor();

    // An order for half an hour from now: confirmed, then waiting for its ready time.
    await page.locator('[data-testid="catalog-item"][data-sku="bread"]').getByRole("button", { name: /^more / }).click();
    await page.getByRole("radio", { name: "At a set time" }).check();
    await page.getByLabel(/^Ready at/).fill(toZonedInput(new Date(Date.now() + 30 * 60_000), ZONE));
    await page.getByLabel("Note (optional)").fill("bread for later");
    await page.getByRole("button", { name: /^Place order/ }).click();
    await withStatus(page, "bread for later", "confirmed");
    const orderId = await order(page, "bread for later").getAttribute("data-order-id");
    expect(orderId).toMatch(/^[0-9a-f-]{36}$/);

    const reported = await fetch(`${setup.sandbox.url}/admin/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "StockLost", orderId }),
    });
    const reply = (await reported.json()) as { status: number; answer: { result: string } };
    expect(reply.status).toBe(200);
    expect(reply.answer.result).toBe("reacted");

    // Live, without a reload: rejected at once, refunded once the process has given it back.
    await withStatus(page, "bread for later", "rejected");
    await order(page, "bread for later").getByTestId("refunded").waitFor({ timeout: 30_000 });
    const text = (await order(page, "bread for later").textContent()) ?? "";
    expect(text).toContain("the shop lost its stock of Sourdough loaf");
    expect(text).toContain("Refunded");
    await context.close();
  });
});
