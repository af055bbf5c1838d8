// End to end, in Debian's Chromium, against a real `hearth serve` whose access tokens
// live 3 seconds: the join page names the household and who invited; an owner removes a
// member whose board is open; a member leaves; and sessions renew silently: the board
// stays live through several token lifetimes and no command is lost. Membership changes
// reach the other members' open boards live, as events (no reload).
import { chromium } from "playwright-core";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer } from "./server";
import type { Server } from "./server";

const TOKEN_SECS = 3;

let server: Server;
let browser: Browser;
const contexts: BrowserContext[] = [];

async function newMember(): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, baseURL: server.url });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  return page;
}

const live = (page: Page) => page.locator('[data-testid="connection"][data-status="open"]').waitFor();

async function join(link: string, name: string): Promise<Page> {
  const page = await newMember();
  await page.goto(link);
  await page.getByTestId("join-title").filter({ hasText: "Join Members Home" }).waitFor();
  await expect(page.getByTestId("invited-by").textContent()).resolves.toBe("Ann invited you.");
  await page.getByLabel("Your name").fill(name);
  await page.getByRole("button", { name: "Join" }).click();
  await page.getByTestId("household-name").filter({ hasText: "Members Home" }).waitFor();
  await live(page);
  return page;
}

async function inviteLink(owner: Page): Promise<string> {
  const input = owner.getByTestId("invite-link");
  // An earlier test's link (used since) may still be shown: wait for a new one.
  const before = (await input.count()) > 0 ? await input.inputValue() : "";
  await owner.getByRole("button", { name: "New invite link" }).click();
  await expect.poll(() => input.inputValue(), { timeout: 20_000 }).not.toBe(before);
  return input.inputValue();
}

/** The access token this page holds for its (only) household. */
const storedToken = (page: Page) =>
  page.evaluate(() => (JSON.parse(localStorage.getItem("hearth:memberships") ?? "[]") as { token: string }[])[0]?.token ?? "");

beforeAll(async () => {
  server = await startServer({ HEARTH_ACCESS_TOKEN_TTL_SECS: String(TOKEN_SECS) });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await server?.stop();
});

describe("members and sessions", () => {
  let ann: Page;

  it("renews a 3-second session silently: live throughout, every command applied", async () => {
    ann = await newMember();
    await ann.goto("/");
    await ann.getByLabel("Household name").fill("Members Home");
    await ann.getByLabel("Your name").fill("Ann");
    await ann.getByRole("button", { name: "Create household" }).click();
    await ann.getByTestId("household-name").filter({ hasText: "Members Home" }).waitFor();
    await live(ann);
    // Every connection state the page shows from now on.
    await ann.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      const el = document.querySelector('[data-testid="connection"]');
      if (!el) throw new Error("no connection indicator");
      new MutationObserver(() => seen.push(el.getAttribute("data-status") ?? "")).observe(el, { attributes: true });
    });
    let token = await storedToken(ann);
    for (let i = 1; i <= 3; i++) {
      // Wait for the next renewal (the token in storage changes), then send a command.
      await ann.waitForFunction(
        (old) => (JSON.parse(localStorage.getItem("hearth:memberships") ?? "[]") as { token: string }[])[0]?.token !== old,
        token,
        { timeout: TOKEN_SECS * 2_000 },
      );
      token = await storedToken(ann);
      const row = ann.locator('[data-testid="catalog-item"][data-sku="milk"]');
      await row.getByRole("button", { name: /^more / }).click();
      await ann.getByLabel("Note (optional)").fill(`renewal ${i}`);
      await ann.getByRole("button", { name: /^Place order/ }).click();
    }
    // Past several lifetimes of the first token: every order is on the board, nothing waits.
    for (let i = 1; i <= 3; i++) await ann.getByTestId("order").filter({ hasText: `renewal ${i}` }).waitFor();
    await ann.getByTestId("pending").waitFor({ state: "detached" });
    await live(ann);
    const seen = await ann.evaluate(() => (window as unknown as { seen: string[] }).seen);
    expect(seen.filter((s) => s !== "open")).toEqual([]);
    const problems = await ann.getByRole("alert").count();
    expect(problems).toBe(0);
  });

  it("takes a removed member, board open, back to their households and says why", async () => {
    const bob = await join(await inviteLink(ann), "Bob");
    // Ann's open board learns of Bob live: a line, and Bob in the members list.
    await ann.getByTestId("member-notice").filter({ hasText: "Bob joined" }).waitFor();
    await ann.getByRole("button", { name: "Remove Bob" }).click();
    await bob.getByTestId("departure-notice").filter({ hasText: "You were removed from Members Home" }).waitFor();
    expect(new URL(bob.url()).pathname).toBe("/");
    await expect(bob.getByRole("link", { name: "Members Home" }).count()).resolves.toBe(0);
    await ann.locator('[data-testid="member"]').filter({ hasText: "Bob" }).waitFor({ state: "detached" });
    await ann.getByTestId("member-notice").filter({ hasText: "You removed Bob" }).waitFor();
  });

  it("lets a member leave, and the last owner cannot", async () => {
    const cy = await join(await inviteLink(ann), "Cy");
    await ann.locator('[data-testid="member"]').filter({ hasText: "Cy" }).waitFor();
    await cy.getByRole("button", { name: "Leave household" }).click();
    await cy.getByTestId("departure-notice").filter({ hasText: "You left Members Home" }).waitFor();
    expect(new URL(cy.url()).pathname).toBe("/");
    // The other member's open board shows it live: a line, and Cy gone from the list.
    await ann.getByTestId("member-notice").filter({ hasText: "Cy left" }).waitFor();
    await ann.locator('[data-testid="member"]').filter({ hasText: "Cy" }).waitFor({ state: "detached" });
    // Ann is the only owner: she may not leave, and is told why.
    await ann.getByRole("button", { name: "Leave household" }).click();
    await ann.getByTestId("members-error").filter({ hasText: "make someone else an owner first" }).waitFor();
    await live(ann);
  });
});
