// End to end, in Debian's Chromium (playwright-core, never a downloaded browser), against
// a real `hearth serve`: two members of one household, a stranger from another one,
// offline and back, and a reload that shows the cached board before the socket opens.
// The household is in Berlin's time zone (its creator's browser); Bob's browser is in New
// York's, and sees the household's times.
import { copyFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import axe from "axe-core";
import { chromium } from "playwright-core";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromZonedInput, toZonedInput, when } from "../src/format";
import { sentence } from "../src/messages";
import { startServer } from "./server";
import type { Server } from "./server";

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
/** Where one set of the phone screenshots is kept in the repository (docs/web.md). */
const DOCS_SCREENSHOTS = fileURLToPath(new URL("../../docs/screenshots/", import.meta.url));
const PHONE = { width: 390, height: 844 };
/** The household's time zone: Ann's browser's, where she creates it. */
const HOUSEHOLD_ZONE = "Europe/Berlin";
/** Bob's browser's time zone: a member away from home. */
const ABROAD = "America/New_York";

let server: Server;
let browser: Browser;
const contexts: BrowserContext[] = [];
/** What Chromium reported as refused by the server's Content-Security-Policy. */
const cspViolations: string[] = [];

async function newMember(timezoneId = HOUSEHOLD_ZONE): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: PHONE, baseURL: server.url, timezoneId });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on("console", (msg) => {
    if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
  });
  return { context, page };
}

const order = (page: Page, note: string) => page.getByTestId("order").filter({ hasText: note });

async function expectStatus(page: Page, note: string, status: string, timeout = 30_000) {
  await order(page, note).and(page.locator(`[data-status="${status}"]`)).waitFor({ timeout });
}

/** Puts an order together and places it; `readyInMinutes` picks a ready-at time that far ahead. */
async function placeOrder(page: Page, items: Record<string, number>, note: string, readyInMinutes?: number) {
  for (const [sku, n] of Object.entries(items)) {
    const row = page.locator(`[data-testid="catalog-item"][data-sku="${sku}"]`);
    for (let i = 0; i < n; i++) await row.getByRole("button", { name: /^more / }).click();
  }
  if (readyInMinutes !== undefined) {
    await page.getByRole("radio", { name: "At a set time" }).check();
    // The picker is in the household's time zone, whatever the browser's.
    await page.getByLabel(/^Ready at/).fill(toZonedInput(new Date(Date.now() + readyInMinutes * 60_000), HOUSEHOLD_ZONE));
  }
  await page.getByLabel("Note (optional)").fill(note);
  await page.getByRole("button", { name: /^Place order/ }).click();
}

/** Cancels an order the way a member does: the button, then the confirmation, saying
 * why when `reason` is given. */
async function cancelOrder(page: Page, note: string, reason?: string) {
  await order(page, note).getByRole("button", { name: /^Cancel order/ }).click();
  if (reason !== undefined) await order(page, note).getByLabel("Why (optional)").fill(reason);
  await order(page, note).getByRole("button", { name: "Yes, cancel it" }).click();
}

const live = (page: Page) => page.locator('[data-testid="connection"][data-live="true"]').waitFor();
const connection = (page: Page, status: string) => page.locator(`[data-testid="connection"][data-status="${status}"]`).waitFor();

/** What axe-core (pinned, from npm) finds serious or critical on the page as it is now. */
const axeFindings: Record<string, string[]> = {};
async function checkA11y(page: Page, state: string) {
  // Evaluated over the DevTools protocol: not a script the page's CSP governs.
  if (!(await page.evaluate("typeof window.axe !== 'undefined'"))) await page.evaluate(axe.source);
  const found = (await page.evaluate(
    "window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })" +
      ".then(r => r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', ')))",
  )) as string[];
  axeFindings[state] = found;
  expect(found, state).toEqual([]);
}

type ServerOrder = { note: string | null; status: string; placedAt: string; readyAt: string | null };

/** The server's board (GET of the room), read with the member's token in the page. */
async function serverOrders(page: Page, hh: string): Promise<ServerOrder[]> {
  return page.evaluate(async (id) => {
    const memberships = JSON.parse(localStorage.getItem("hearth:memberships") ?? "[]") as { household: { id: string }; token: string }[];
    const token = memberships.find((m) => m.household.id === id)?.token ?? "";
    const res = await fetch(`/parties/household/${id}`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { state: { orders: ServerOrder[] } };
    return body.state.orders;
  }, hh);
}

/** The screenshots kept in docs/screenshots/ too (one per state the issue asks to see). */
const DOCUMENTED = new Set([
  "phone-live",
  "phone-offline-unconfirmed",
  "phone-offline-reloaded",
  "phone-offline-confirmed",
  "phone-refused",
  "phone-reconnecting",
  "phone-unreachable",
  "phone-picker-household-zone",
]);

/** A phone-size screenshot (390x844, what is on screen) with `focus` scrolled into view
 * below the sticky connection bar. */
async function shot(page: Page, name: string, focus?: Locator) {
  if (focus) await focus.first().evaluate((el) => el.scrollIntoView({ block: "center" }));
  else await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${ARTIFACTS}${name}.png` });
  if (DOCUMENTED.has(name) && process.env.HEARTH_E2E_DOCS_SCREENSHOTS === "1") {
    copyFileSync(`${ARTIFACTS}${name}.png`, `${DOCS_SCREENSHOTS}${name}.png`);
  }
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  if (process.env.HEARTH_E2E_DOCS_SCREENSHOTS === "1") mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
  server = await startServer();
  // launch() gives every run a fresh, empty profile directory of its own.
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await server?.stop();
});

describe("the household board", () => {
  let ann: { context: BrowserContext; page: Page };
  let bob: { context: BrowserContext; page: Page };
  let household = "";

  it("lets a member create a household and another join by the invite link", async () => {
    ann = await newMember();
    const served = await ann.page.goto("/");
    // The app is served with its CSP (so the check at the end means something).
    expect(served?.headers()["content-security-policy"]).toContain("script-src 'self'");
    await checkA11y(ann.page, "home");
    await ann.page.getByLabel("Household name").fill("Test Home");
    await ann.page.getByLabel("Your name").fill("Ann");
    await ann.page.getByRole("button", { name: "Create household" }).click();
    await ann.page.getByTestId("household-name").filter({ hasText: "Test Home" }).waitFor();
    await live(ann.page);
    await expect(ann.page.getByTestId("connection").textContent()).resolves.toBe("Live");
    household = ann.page.url().split("/h/")[1] ?? "";
    await shot(ann.page, "phone-live");
    await checkA11y(ann.page, "board, live");
    expect(household).toMatch(/^[0-9a-f-]{36}$/);

    await ann.page.getByRole("button", { name: "New invite link" }).click();
    const link = await ann.page.getByTestId("invite-link").inputValue();
    expect(link).toContain(`/join/${household}/`);

    bob = await newMember(ABROAD);
    await bob.page.goto(link);
    await checkA11y(bob.page, "join");
    await bob.page.getByLabel("Your name").fill("Bob");
    await bob.page.getByRole("button", { name: "Join" }).click();
    await bob.page.getByTestId("household-name").filter({ hasText: "Test Home" }).waitFor();
    await bob.page.locator('[data-testid="connection"][data-status="open"]').waitFor();
  });

  it("shows an order placed by one member to the other live, up to ready on its own", async () => {
    await placeOrder(ann.page, { milk: 2, bread: 1 }, "first order");
    // Bob never reloads: the order arrives over his socket.
    await order(bob.page, "first order").waitFor();
    await expect(order(bob.page, "first order").textContent()).resolves.toContain("Placed by Ann");
    await expectStatus(bob.page, "first order", "ready");
    await expectStatus(ann.page, "first order", "ready");
    const text = (await order(bob.page, "first order").textContent()) ?? "";
    for (const step of ["Placed", "Stock reserved", "Paid", "Confirmed", "Ready"]) expect(text).toContain(step);
    expect(text).toContain("€7.08"); // 2 x 1.29 + 4.50
    // "As soon as possible" is the server's preparation time after placing (2 s here),
    // shown to members as the ready time.
    const first = (await serverOrders(ann.page, household)).find((o) => o.note === "first order");
    expect(first?.readyAt).toBeTruthy();
    expect(Date.parse(first?.readyAt ?? "") - Date.parse(first?.placedAt ?? "")).toBe(2_000);
    expect(text).toContain(`ready ${when(first?.readyAt ?? null, HOUSEHOLD_ZONE)}`);
    await shot(bob.page, "board-bob-ready", order(bob.page, "first order"));
  });

  it("shows every member the household's times, in its zone, wherever their device is", async () => {
    expect(await bob.page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone)).toBe(ABROAD);
    for (const page of [ann.page, bob.page]) await expect(page.getByTestId("household-zone").textContent()).resolves.toBe(HOUSEHOLD_ZONE);
    // Bob picks a time in Berlin's clock, on a device in New York's.
    await bob.page.locator('[data-testid="catalog-item"][data-sku="bread"]').getByRole("button", { name: /^more / }).click();
    await bob.page.getByRole("radio", { name: "At a set time" }).check();
    const picker = bob.page.getByLabel(`Ready at (${HOUSEHOLD_ZONE})`);
    const wanted = toZonedInput(new Date(Date.now() + 90 * 60_000), HOUSEHOLD_ZONE);
    await picker.fill(wanted);
    const at = fromZonedInput(wanted, HOUSEHOLD_ZONE)?.toISOString() ?? "";
    const inBerlin = when(at, HOUSEHOLD_ZONE);
    expect(inBerlin).not.toBe(when(at, ABROAD));
    await expect(bob.page.getByTestId("ready-at-said").textContent()).resolves.toBe(`Ready ${inBerlin}`);
    await shot(bob.page, "phone-picker-household-zone", picker);
    await bob.page.getByLabel("Note (optional)").fill("from abroad");
    await bob.page.getByRole("button", { name: /^Place order/ }).click();
    await expectStatus(bob.page, "from abroad", "confirmed");
    const placed = (await serverOrders(ann.page, household)).find((o) => o.note === "from abroad");
    expect(placed?.readyAt && new Date(placed.readyAt).toISOString()).toBe(at);
    for (const page of [ann.page, bob.page]) {
      await expect(order(page, "from abroad").getByTestId("ready-at").textContent()).resolves.toBe(`expected ready ${inBerlin}`);
    }

    // An owner changes the zone; the server refuses a name it does not know.
    const refused = await ann.page.evaluate(async (hh) => {
      const memberships = JSON.parse(localStorage.getItem("hearth:memberships") ?? "[]") as { household: { id: string }; token: string }[];
      const token = memberships.find((m) => m.household.id === hh)?.token ?? "";
      const res = await fetch(`/households/${hh}/time-zone`, {
        method: "PUT",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ timeZone: "Mars/Olympus" }),
      });
      return { status: res.status, body: (await res.json()) as { error: { code: string; message: string } } };
    }, household);
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("unknown_time_zone");
    expect(refused.body.error.message).toMatch(/^timeZone: /);
    await ann.page.getByTestId("time-zone-setting").locator("summary").click();
    await ann.page.getByLabel("Time zone", { exact: true }).fill("Asia/Tokyo");
    await ann.page.getByRole("button", { name: "Save time zone" }).click();
    await ann.page.getByTestId("household-zone").filter({ hasText: "Asia/Tokyo" }).waitFor();
    await expect(order(ann.page, "from abroad").getByTestId("ready-at").textContent()).resolves.toBe(`expected ready ${when(at, "Asia/Tokyo")}`);
    // Bob learns it when he next connects.
    await bob.page.reload();
    await bob.page.getByTestId("household-zone").filter({ hasText: "Asia/Tokyo" }).waitFor();
    await expect(order(bob.page, "from abroad").getByTestId("ready-at").textContent()).resolves.toBe(`expected ready ${when(at, "Asia/Tokyo")}`);
    // Back to Berlin for the rest of the run.
    await ann.page.getByLabel("Time zone", { exact: true }).fill(HOUSEHOLD_ZONE);
    await ann.page.getByRole("button", { name: "Save time zone" }).click();
    await ann.page.getByTestId("household-zone").filter({ hasText: HOUSEHOLD_ZONE }).waitFor();
    await checkA11y(ann.page, "time zone setting");
    await ann.page.getByTestId("time-zone-setting").locator("summary").click();
    await bob.page.reload();
    await bob.page.getByTestId("household-zone").filter({ hasText: HOUSEHOLD_ZONE }).waitFor();
    await live(bob.page);
  });

  it("shows a chore scheduled for another member live; they take a swap, the other marks it done", async () => {
    const chore = (page: Page) => page.getByTestId("chore").filter({ hasText: "Take the bins out" });
    await ann.page.getByLabel("Chore", { exact: true }).fill("Take the bins out");
    // Bob joined after Ann's board read the members: opening the list reads them again.
    await ann.page.getByLabel("For", { exact: true }).focus();
    await ann.page.getByLabel("For", { exact: true }).locator("option", { hasText: "Bob" }).waitFor({ state: "attached" });
    await ann.page.getByLabel("For", { exact: true }).selectOption({ label: "Bob" });
    await ann.page.getByLabel("Repeats", { exact: true }).selectOption({ label: "every week" });
    await ann.page.getByRole("button", { name: "Schedule chore" }).click();
    // Bob never reloads: the chore arrives over his socket, his.
    await chore(bob.page).waitFor();
    await expect(chore(bob.page).textContent()).resolves.toContain("For you");
    await expect(chore(bob.page).getAttribute("data-status")).resolves.toBe("scheduled");
    // Bob asks Ann to take it; Ann sees the question live and accepts.
    await bob.page.getByLabel("Swap “Take the bins out” with").focus();
    await bob.page.getByLabel("Swap “Take the bins out” with").locator("option", { hasText: "Ann" }).waitFor({ state: "attached" });
    await bob.page.getByLabel("Swap “Take the bins out” with").selectOption({ label: "Ann" });
    await chore(bob.page).getByRole("button", { name: "Ask" }).click();
    await ann.page.getByRole("button", { name: "Take “Take the bins out” over" }).click();
    await chore(bob.page).filter({ hasText: "For Ann" }).waitFor();
    await chore(ann.page).filter({ hasText: "For you" }).waitFor();
    await checkA11y(ann.page, "board with a chore");
    await ann.page.getByRole("button", { name: "Mark “Take the bins out” done" }).click();
    await bob.page.locator('[data-testid="chore"][data-status="done"]').filter({ hasText: "done by Ann" }).waitFor();
    // Weekly: its process schedules the next one, which both see.
    await bob.page.locator('[data-testid="chore"][data-status="scheduled"]').filter({ hasText: "Take the bins out" }).waitFor();
  });

  it("keeps another household out: none of it is shown and its room refuses the token (401)", async () => {
    const carol = await newMember();
    await carol.page.goto("/");
    await carol.page.getByLabel("Household name").fill("Other Home");
    await carol.page.getByLabel("Your name").fill("Carol");
    await carol.page.getByRole("button", { name: "Create household" }).click();
    await carol.page.locator('[data-testid="connection"][data-status="open"]').waitFor();
    await expect(carol.page.getByTestId("board").textContent()).resolves.toContain("No orders yet");
    expect(await carol.page.getByText("first order").count()).toBe(0);

    const result = await carol.page.evaluate(async (hh) => {
      const memberships = JSON.parse(localStorage.getItem("hearth:memberships") ?? "[]") as { token: string }[];
      const token = memberships[0]?.token ?? "";
      const http = await fetch(`/parties/household/${hh}`, { headers: { authorization: `Bearer ${token}` } });
      const ws = await new Promise<string>((resolve) => {
        const socket = new WebSocket(`ws://${location.host}/parties/household/${hh}?token=${token}`);
        socket.onopen = () => resolve("open");
        socket.onerror = () => resolve("refused");
      });
      return { status: http.status, ws };
    }, household);
    expect(result).toEqual({ status: 401, ws: "refused" });

    await carol.page.goto(`/h/${household}`);
    await carol.page.getByTestId("not-member").waitFor();
    await shot(carol.page, "board-carol-other-household");
  });

  it("brings a member back from offline with what happened meanwhile, and sends what they did offline", async () => {
    // Bob's own order, ready (members collect their own orders; owners any).
    await placeOrder(bob.page, { bread: 1 }, "bob's order");
    await expectStatus(bob.page, "bob's order", "ready");
    await placeOrder(ann.page, { coffee: 1 }, "second order", 60);
    await expectStatus(bob.page, "second order", "confirmed");

    await bob.context.setOffline(true);
    await bob.page.locator('[data-testid="connection"][data-status="offline"]').waitFor();
    // Bob collects his ready order while offline: it waits, pending, in his cache.
    await order(bob.page, "bob's order").getByRole("button", { name: "Mark collected" }).click();
    await bob.page.getByTestId("pending").waitFor();

    // Ann cancels the second order meanwhile, and says why.
    await cancelOrder(ann.page, "second order", "we are eating out");
    await expectStatus(ann.page, "second order", "cancelled");
    // Bob, offline, does not see it.
    await bob.page.waitForTimeout(1_000);
    expect(await order(bob.page, "second order").getAttribute("data-status")).toBe("confirmed");

    await bob.context.setOffline(false);
    await expectStatus(bob.page, "second order", "cancelled");
    // Bob's offline command was sent on reconnect and reached Ann.
    await expectStatus(ann.page, "bob's order", "completed");
    await expectStatus(bob.page, "bob's order", "completed");
    await bob.page.getByTestId("pending").waitFor({ state: "detached" });
    // Who did what, and why: each member sees it, named.
    await expect(order(bob.page, "second order").getByTestId("cancelled-by").textContent()).resolves.toBe("Cancelled by Ann: we are eating out");
    await expect(order(ann.page, "second order").getByTestId("cancelled-by").textContent()).resolves.toBe("Cancelled by you: we are eating out");
    await expect(order(ann.page, "bob's order").getByTestId("completed-by").textContent()).resolves.toBe("Collected by Bob");
    await expect(order(bob.page, "bob's order").getByTestId("completed-by").textContent()).resolves.toBe("Collected by you");
    await shot(bob.page, "board-bob-back-online", order(bob.page, "second order"));
  });

  it("shows an order placed offline at once, unconfirmed, keeps it over a reload offline, and confirms it once back", async () => {
    // The service worker controls the page; a reload online lets it cache the catalog too.
    await bob.page.waitForFunction(() => navigator.serviceWorker?.controller != null);
    await bob.page.reload();
    await live(bob.page);

    await bob.context.setOffline(true);
    await connection(bob.page, "offline");
    await expect(bob.page.getByTestId("connection").textContent()).resolves.toContain("Offline");
    await placeOrder(bob.page, { bread: 2 }, "placed offline");
    const mine = order(bob.page, "placed offline");
    await mine.and(bob.page.locator('[data-pending="placing"]')).waitFor();
    await expect(mine.getByTestId("unconfirmed").textContent()).resolves.toBe("Not yet confirmed");
    await expect(mine.textContent()).resolves.toContain("2 × Sourdough loaf");
    await shot(bob.page, "phone-offline-unconfirmed", mine);
    await checkA11y(bob.page, "offline, an unconfirmed order");

    // Reloaded offline: the service worker opens the app; the board and the queued
    // command come from this device's cache.
    await bob.page.reload();
    await order(bob.page, "first order").waitFor();
    await mine.and(bob.page.locator('[data-pending="placing"]')).waitFor();
    await connection(bob.page, "offline");
    await shot(bob.page, "phone-offline-reloaded", mine);
    await checkA11y(bob.page, "offline, reloaded");

    await bob.context.setOffline(false);
    await live(bob.page);
    await mine.and(bob.page.locator('[data-testid="order"]:not([data-pending])')).waitFor();
    await expectStatus(bob.page, "placed offline", "ready");
    await expectStatus(ann.page, "placed offline", "ready");
    expect(await mine.count()).toBe(1);
    const onServer = (await serverOrders(ann.page, household)).filter((o) => o.note === "placed offline");
    expect(onServer).toHaveLength(1);
    await shot(bob.page, "phone-offline-confirmed", mine);
  });

  it("rolls a refused command back and says why in a sentence", async () => {
    await bob.context.setOffline(true);
    await connection(bob.page, "offline");
    // A bell character in the note: the client lets it through, the server refuses it.
    await placeOrder(bob.page, { eggs: 1 }, "ring twice\u0007");
    const refused = order(bob.page, "ring twice");
    await refused.and(bob.page.locator('[data-pending="placing"]')).waitFor();
    await bob.context.setOffline(false);
    const banner = bob.page.getByTestId("rejected");
    await banner.waitFor();
    const code = (await banner.getAttribute("data-code")) ?? "";
    await expect(banner.textContent()).resolves.toBe(`Your order of 1 × Eggs, dozen was not placed. ${sentence(code)} Dismiss`);
    expect(code).not.toBe("");
    await refused.waitFor({ state: "detached" });
    await shot(bob.page, "phone-refused", banner);
    await checkA11y(bob.page, "a refusal");
    await banner.getByRole("button", { name: "Dismiss" }).click();
    await banner.waitFor({ state: "detached" });
    expect((await serverOrders(ann.page, household)).filter((o) => o.note?.startsWith("ring twice"))).toHaveLength(0);
  });

  it("is usable by keyboard alone, and asks before cancelling", async () => {
    const page = ann.page;
    await page.getByRole("button", { name: "more Coffee beans 250 g" }).focus();
    await page.keyboard.press("Enter");
    await page.keyboard.press("Space");
    await expect(page.getByLabel("Coffee beans 250 g quantity").textContent()).resolves.toBe("2");
    await page.getByRole("radio", { name: "As soon as possible" }).focus();
    await page.keyboard.press("ArrowDown");
    await expect(page.getByRole("radio", { name: "At a set time" }).isChecked()).resolves.toBe(true);
    await expect(page.getByTestId("ready-at-said").textContent()).resolves.toMatch(/^Ready (today|tomorrow) \d\d:\d\d$/);
    await page.getByLabel("Note (optional)").focus();
    await page.keyboard.type("by keyboard");
    await page.keyboard.press("Enter");
    await expectStatus(page, "by keyboard", "confirmed");
    // The next order starts afresh: the ready time does not carry over.
    await expect(page.getByRole("radio", { name: "As soon as possible" }).isChecked()).resolves.toBe(true);
    await expect(order(page, "by keyboard").textContent()).resolves.toMatch(/ready (today|tomorrow) \d\d:\d\d/);

    const cancel = order(page, "by keyboard").getByRole("button", { name: "Cancel order of 2 × Coffee beans 250 g" });
    await cancel.focus();
    await page.keyboard.press("Enter");
    // Asked first; the confirmation has the focus; "Keep it" keeps it.
    const confirm = order(page, "by keyboard").getByRole("button", { name: "Yes, cancel it" });
    await expect(confirm.evaluate((el) => el === document.activeElement)).resolves.toBe(true);
    await shot(page, "phone-confirm-cancel", confirm);
    await checkA11y(page, "confirm cancel");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter"); // Keep it
    await cancel.waitFor();
    expect(await order(page, "by keyboard").getAttribute("data-status")).toBe("confirmed");
    await cancel.focus();
    await page.keyboard.press("Enter");
    await page.keyboard.press("Enter"); // Yes, cancel it
    await expectStatus(page, "by keyboard", "cancelled");
    // A cancelled order shows what happened and how it ended, no "Ready" step to come.
    const steps = await order(page, "by keyboard").locator(".steps li").allTextContents();
    expect(steps.join(" | ")).not.toContain("Ready");
    expect(steps[steps.length - 1]).toContain("Cancelled");
    await expect(order(page, "by keyboard").getByTestId("cancelled-by").textContent()).resolves.toBe("Cancelled by you");
    // Bob's screen reader heard it.
    await bob.page.getByTestId("announcer").filter({ hasText: "order of 2 × Coffee beans 250 g was cancelled." }).waitFor();
  });

  it("says whether it is live, reconnecting (and when it tries next) or cannot reach the server", async () => {
    let blocked = false;
    let current: { close: (o?: { code?: number; reason?: string }) => Promise<void> } | null = null;
    await ann.page.routeWebSocket(/\/parties\//, (ws) => {
      if (blocked) {
        void ws.close({ code: 1011, reason: "blocked by the test" });
        return;
      }
      current = ws;
      ws.connectToServer();
    });
    await ann.page.reload();
    await live(ann.page);
    blocked = true;
    await current!.close({ code: 1012, reason: "restarting" });
    await connection(ann.page, "reconnecting");
    await ann.page.getByTestId("connection").filter({ hasText: /^Reconnecting · (next try in \d+ s|trying now…)/ }).waitFor();
    await shot(ann.page, "phone-reconnecting");
    await checkA11y(ann.page, "reconnecting");
    await connection(ann.page, "unreachable");
    await ann.page.getByTestId("connection").filter({ hasText: /^Server unreachable · next try in \d+ s/ }).waitFor();
    await shot(ann.page, "phone-unreachable");
    await checkA11y(ann.page, "unreachable");
    blocked = false;
    await ann.page.getByRole("button", { name: "Try now" }).click();
    await live(ann.page);
    await ann.page.unrouteAll();
  });

  it("shows the cached board at once on reload, before the socket opens, then catches up", async () => {
    let blocked = true;
    await ann.page.routeWebSocket(/\/parties\//, (ws) => {
      if (blocked) ws.close({ code: 1011, reason: "blocked by the test" });
      else ws.connectToServer();
    });
    await ann.page.reload();
    // No socket has opened, yet the board is there from the cache.
    await order(ann.page, "first order").waitFor({ timeout: 5_000 });
    await order(ann.page, "second order").waitFor({ timeout: 5_000 });
    expect(await ann.page.getByTestId("connection").getAttribute("data-status")).not.toBe("open");
    await shot(ann.page, "board-ann-cached");

    await placeOrder(bob.page, { eggs: 1 }, "third order");
    await order(bob.page, "third order").waitFor();
    expect(await order(ann.page, "third order").count()).toBe(0);

    blocked = false;
    await ann.page.getByRole("button", { name: "Try now" }).or(ann.page.locator('[data-live="true"]')).first().waitFor();
    if (await ann.page.getByRole("button", { name: "Try now" }).count()) await ann.page.getByRole("button", { name: "Try now" }).click();
    await order(ann.page, "third order").waitFor({ timeout: 30_000 });
    await live(ann.page);
    await shot(ann.page, "board-ann-caught-up");
  });

  it("shows a long history's most recent orders first, and older ones on demand", async () => {
    const dan = await newMember();
    await dan.page.goto("/");
    await dan.page.getByLabel("Household name").fill("Busy Home");
    await dan.page.getByLabel("Your name").fill("Dan");
    await dan.page.getByRole("button", { name: "Create household" }).click();
    await dan.page.locator('[data-testid="connection"][data-status="open"]').waitFor();
    const busy = dan.page.url().split("/h/")[1] ?? "";
    // 103 orders over HTTP (more than the welcome's 100), waiting out the member's rate.
    const placed = await dan.page.evaluate(async (hh) => {
      const memberships = JSON.parse(localStorage.getItem("hearth:memberships") ?? "[]") as { household: { id: string }; token: string }[];
      const token = memberships.find((m) => m.household.id === hh)?.token ?? "";
      let ok = 0;
      for (let i = 0; i < 103; i++) {
        const body = JSON.stringify({
          id: crypto.randomUUID(),
          type: "PlaceOrder",
          payload: { orderId: crypto.randomUUID(), lines: [{ sku: "milk", quantity: 1 }], note: `bulk ${i}` },
        });
        for (;;) {
          const res = await fetch(`/parties/household/${hh}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body });
          if (res.status === 429) {
            // The server says when the member's rate has room again.
            const wait = Number(res.headers.get("retry-after") ?? "1");
            await new Promise((r) => setTimeout(r, Math.max(wait, 1) * 1_000));
            continue;
          }
          if (res.ok) ok++;
          break;
        }
      }
      return ok;
    }, busy);
    expect(placed).toBe(103);
    // A new visit: the welcome holds the 100 most recent orders; 3 are older.
    await dan.page.evaluate((hh) => localStorage.removeItem(`hearth:household:${hh}`), busy);
    await dan.page.reload();
    await order(dan.page, "bulk 102").waitFor();
    const older = dan.page.getByTestId("older-orders");
    await expect(older.textContent()).resolves.toContain("3 more");
    expect(await dan.page.getByTestId("order").count()).toBe(100);
    expect(await order(dan.page, "bulk 0").count()).toBe(0); // ("bulk 1" would match "bulk 10")
    await older.click();
    await order(dan.page, "bulk 0").waitFor();
    expect(await dan.page.getByTestId("order").count()).toBe(103);
    await older.waitFor({ state: "detached" });
    await shot(dan.page, "board-dan-older-orders");
  });

  it("shows what is available, never lets a member ask for more, and the server names and prices what is ordered", async () => {
    const page = ann.page;
    const pizza = page.locator('[data-testid="catalog-item"][data-sku="pizza"]');
    await expect(pizza.getByTestId("available").textContent()).resolves.toBe("40 available");
    const more = pizza.getByRole("button", { name: /^more / });
    for (let i = 0; i < 40; i++) await more.click();
    await expect(page.getByLabel("Margherita pizza quantity").textContent()).resolves.toBe("40");
    await expect(more.isDisabled()).resolves.toBe(true);
    const fewer = pizza.getByRole("button", { name: /^fewer / });
    for (let i = 0; i < 40; i++) await fewer.click();
    await expect(page.getByLabel("Margherita pizza quantity").textContent()).resolves.toBe("0");
    // A client that claims a name and a price of its own gets nothing: the name is bad
    // input, the price is refused; over HTTP, with the member's own token.
    const token = await page.evaluate((id) => {
      const memberships = JSON.parse(localStorage.getItem("hearth:memberships") ?? "[]") as { household: { id: string }; token: string }[];
      return memberships.find((m) => m.household.id === id)?.token ?? "";
    }, household);
    const post = (lines: unknown) =>
      page.evaluate(
        async ({ hh, token, lines }) => {
          const res = await fetch(`/parties/household/${hh}`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
            body: JSON.stringify({ id: crypto.randomUUID(), type: "PlaceOrder", payload: { orderId: crypto.randomUUID(), lines } }),
          });
          return { status: res.status, body: (await res.json()) as Record<string, { code?: string }> };
        },
        { hh: household, token, lines },
      );
    const named = await post([{ sku: "pizza", name: "Free pizza", quantity: 1, unitPriceCents: 1 }]);
    expect([named.status, named.body.error?.code]).toEqual([400, "invalid_payload"]);
    const cheap = await post([{ sku: "pizza", quantity: 1, unitPriceCents: 1 }]);
    expect([cheap.status, cheap.body.rejected?.code]).toEqual([409, "price_changed"]);
    const before = (await serverOrders(page, household)).length;
    await placeOrder(page, { pizza: 1 }, "named by the server");
    await expectStatus(page, "named by the server", "ready");
    await expect(order(page, "named by the server").textContent()).resolves.toContain("1 × Margherita pizza");
    expect((await serverOrders(page, household)).length).toBe(before + 1);
  });

  it("found no serious or critical accessibility violation in any state", () => {
    expect(Object.keys(axeFindings).sort()).toEqual(
      [
        "home",
        "board, live",
        "board with a chore",
        "join",
        "offline, an unconfirmed order",
        "offline, reloaded",
        "a refusal",
        "confirm cancel",
        "reconnecting",
        "unreachable",
        "time zone setting",
      ].sort(),
    );
    expect(Object.values(axeFindings).flat()).toEqual([]);
  });

  it("runs under the server's Content-Security-Policy without a violation", () => {
    expect(cspViolations).toEqual([]);
  });
});
