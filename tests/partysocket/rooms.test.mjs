// The real partysocket client (pinned in package.json) against `hearth serve`.
// Node 20 has no global WebSocket: the `ws` package is passed as PartySocket's WebSocket.
// serve.mjs says which binary runs (HEARTH_BIN; build it first: cargo build -p hearth).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import PartySocket from "partysocket";
import WS from "ws";
import { serve } from "./serve.mjs";

let server;
let host; // "127.0.0.1:PORT"

/** Starts `hearth serve` with `env` added; resolves with the process and its host:port. */
function start(env = {}) {
  // --no-durable: these tests pin exact seqs (counted from the household's position after
  // its setup, read with `head`), and the embedded executor would move each
  // placed order on by itself (its fulfilment appends events of its own: seen as seqs
  // 3..10 where the test expects 1..2). Durable work is tested in crates/embedded,
  // crates/temporal and the browser end-to-end tests.
  return serve(["--memory", "--no-durable"], {
    HEARTH_TOKEN_SECRET: "partysocket-test-secret-0123456789abcdef",
    ...env,
  });
}

before(async () => {
  ({ proc: server, host } = await start());
});

after(() => {
  server?.kill("SIGTERM");
});

async function http(method, url, body, token, at = host) {
  const res = await fetch(`http://${at}${url}`, {
    method,
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function household() {
  const { status, body } = await http("POST", "/households", { name: "Home", ownerName: "Ann" });
  assert.equal(status, 201);
  return { id: body.household.id, owner: body.token };
}

async function member(hh) {
  const invite = await http("POST", `/households/${hh.id}/invites`, {}, hh.owner);
  assert.equal(invite.status, 201);
  const joined = await http("POST", `/households/${hh.id}/join`, { code: invite.body.code, name: "Bob" });
  assert.equal(joined.status, 201);
  return joined.body.token;
}

/** The household's position (its log's last seq) as the room's state says it: tests
 * count what they do from it, since a household's setup is in its log too. */
async function head(room, token, at = host) {
  const { status, body } = await http("GET", `/parties/household/${room}`, undefined, token, at);
  assert.equal(status, 200);
  return body.seq;
}

/** A PartySocket that records every message; `next(pred)` waits for one. */
function socket(room, options) {
  const ws = new PartySocket({
    host: options.host ?? host,
    party: "household",
    room,
    WebSocket: WS,
    ...options,
  });
  const seen = [];
  const waiters = [];
  ws.addEventListener("message", (e) => {
    const msg = JSON.parse(e.data);
    seen.push(msg);
    for (const w of [...waiters]) {
      if (w.pred(msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(msg);
      }
    }
  });
  ws.seen = seen;
  ws.next = (pred, ms = 5000) =>
    new Promise((resolve, reject) => {
      const hit = seen.find((m) => pred(m) && !m.__taken);
      if (hit) {
        hit.__taken = true;
        return resolve(hit);
      }
      const timer = setTimeout(() => reject(new Error("timed out waiting for a message")), ms);
      waiters.push({
        pred,
        resolve: (m) => {
          clearTimeout(timer);
          m.__taken = true;
          resolve(m);
        },
      });
    });
  ws.events = () => seen.filter((m) => m.event).map((m) => m.event.seq);
  return ws;
}

const isWelcome = (m) => m.welcome !== undefined;
const eventAt = (seq) => (m) => m.event?.seq === seq;
const ackOf = (id) => (m) => m.ack?.id === id;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function placeOrder() {
  return {
    id: randomUUID(),
    type: "PlaceOrder",
    payload: {
      orderId: randomUUID(),
      // Skus and quantities: the server names and prices the line from its catalog.
      lines: [{ sku: "milk", quantity: 1 }],
    },
  };
}

test("two members of one household see each other's commands", async () => {
  const hh = await household();
  const bob = await member(hh);
  const base = await head(hh.id, hh.owner);
  const a = socket(hh.id, { query: { token: hh.owner } });
  const b = socket(hh.id, { query: { token: bob } });
  await a.next(isWelcome);
  await b.next(isWelcome);

  const first = placeOrder();
  a.send(JSON.stringify({ command: first }));
  assert.equal((await a.next(ackOf(first.id))).ack.seq, base + 1);
  const second = placeOrder();
  b.send(JSON.stringify({ command: second }));
  assert.equal((await b.next(ackOf(second.id))).ack.seq, base + 2);

  for (const ws of [a, b]) {
    assert.equal((await ws.next(eventAt(base + 1))).event.payload.orderId, first.payload.orderId);
    assert.equal((await ws.next(eventAt(base + 2))).event.payload.orderId, second.payload.orderId);
  }
  await sleep(200);
  assert.deepEqual(a.events(), [base + 1, base + 2]);
  assert.deepEqual(b.events(), [base + 1, base + 2]);
  a.close();
  b.close();
});

test("a member reconnecting with since gets exactly what it missed", async () => {
  const hh = await household();
  const bob = await member(hh);
  const base = await head(hh.id, hh.owner);
  const a = socket(hh.id, { query: { token: hh.owner } });
  await a.next(isWelcome);
  let cursor = base;
  // The query function runs before every connect: it carries the cursor.
  const b = socket(hh.id, { query: async () => ({ token: bob, since: String(cursor) }) });
  b.addEventListener("message", (e) => {
    const msg = JSON.parse(e.data);
    if (msg.event) cursor = msg.event.seq;
  });
  await b.next(isWelcome);

  const one = placeOrder();
  a.send(JSON.stringify({ command: one }));
  await b.next(eventAt(base + 1));
  assert.equal(cursor, base + 1);

  b.close();
  await sleep(100);
  for (let i = 0; i < 3; i++) {
    const cmd = placeOrder();
    a.send(JSON.stringify({ command: cmd }));
    await a.next(ackOf(cmd.id));
  }
  b.reconnect();
  const welcome = await b.next(isWelcome);
  assert.equal(welcome.welcome.seq, base + 4);
  assert.equal(welcome.welcome.olderOrders, 0);
  for (const seq of [2, 3, 4]) await b.next(eventAt(base + seq));
  const live = placeOrder();
  a.send(JSON.stringify({ command: live }));
  await b.next(eventAt(base + 5));
  await sleep(200);
  assert.deepEqual(
    b.events(),
    [1, 2, 3, 4, 5].map((n) => base + n),
    "no gap, no duplicate",
  );
  a.close();
  b.close();
});

test("a new socket with a duplicate _pk takes over and keeps receiving", async () => {
  const hh = await household();
  const base = await head(hh.id, hh.owner);
  const writer = socket(hh.id, { query: { token: hh.owner } });
  await writer.next(isWelcome);
  const id = `tab-${randomUUID()}`;
  const old = socket(hh.id, {
    id,
    query: { token: hh.owner },
    // 4009: replaced by a newer socket with the same _pk; reconnecting would steal it back.
    shouldReconnectOnClose: (e) => e.code !== 4009,
  });
  await old.next(isWelcome);
  const closed = new Promise((resolve) => old.addEventListener("close", (e) => resolve(e.code)));
  const fresh = socket(hh.id, { id, query: { token: hh.owner } });
  await fresh.next(isWelcome);
  assert.equal(fresh.id, old.id);
  assert.equal(await closed, 4009);
  await sleep(100);

  for (const seq of [1, 2]) {
    const cmd = placeOrder();
    writer.send(JSON.stringify({ command: cmd }));
    await writer.next(ackOf(cmd.id));
    await fresh.next(eventAt(base + seq));
  }
  assert.deepEqual(fresh.events(), [base + 1, base + 2]);
  assert.deepEqual(old.events(), []);
  writer.close();
  fresh.close();
  old.close();
});

test("a member of another household is refused", async () => {
  const hh = await household();
  const other = await household();
  const intruder = socket(hh.id, { query: { token: other.owner }, maxRetries: 1 });
  let opened = false;
  intruder.addEventListener("open", () => {
    opened = true;
  });
  const error = await new Promise((resolve) => intruder.addEventListener("error", resolve));
  assert.match(String(error.message ?? error.error?.message), /401/);
  await sleep(300);
  assert.equal(opened, false);
  assert.equal(intruder.events().length, 0);
  intruder.close();

  const res = await PartySocket.fetch(
    { host, party: "household", room: hh.id, query: { token: other.owner } },
    { method: "GET" },
  );
  assert.equal(res.status, 401);
  const ok = await PartySocket.fetch(
    { host, party: "household", room: hh.id, query: { token: hh.owner } },
    { method: "GET" },
  );
  assert.equal(ok.status, 200);
  const state = await ok.json();
  const base = await head(hh.id, hh.owner);
  assert.equal(state.seq, base);
  assert.equal(state.state.seq, base);
  assert.deepEqual([state.state.orders, state.state.chores], [[], []]);
  assert.deepEqual([state.olderOrders, state.olderChores], [0, 0]);
  // The household's log starts with its owner's joining: the view has its members.
  assert.deepEqual(
    state.state.members.map((m) => [m.name, m.role]),
    [["Ann", "owner"]],
  );
});

test("a reconnect takes a fresh token: partysocket's query is a function", async () => {
  // Access tokens of 2 s: the first one expires while the socket is open.
  const short = await start({ HEARTH_ACCESS_TOKEN_TTL_SECS: "2" });
  try {
    const created = await http("POST", "/households", { name: "Home", ownerName: "Ann" }, undefined, short.host);
    assert.equal(created.status, 201);
    const hh = created.body.household.id;
    const base = await head(hh, created.body.token, short.host);
    let current = { token: created.body.token, refresh: created.body.refresh };
    const renewToken = async () => {
      const res = await http("POST", `/households/${hh}/sessions/refresh`, { refresh: current.refresh }, undefined, short.host);
      assert.equal(res.status, 200);
      current = { token: res.body.token, refresh: res.body.refresh };
    };
    // The query function runs before every (re)connect: it renews the token then, so a
    // reconnect never presents an expired one.
    let connects = 0;
    const query = async () => {
      if (connects++ > 0) await renewToken();
      return { token: current.token };
    };
    const ws = socket(hh, { host: short.host, query });
    const closes = [];
    ws.addEventListener("close", (e) => closes.push(e.code));
    await ws.next(isWelcome);
    // Not renewed over the socket: it closes at its token's expiry (4001), and
    // partysocket reconnects with the token the query function gives then.
    await ws.next(isWelcome, 10000);
    assert.deepEqual(closes, [4001]);
    assert.equal(connects, 2);
    // Renewed over the socket: no close at that token's expiry.
    await renewToken();
    ws.send(JSON.stringify({ renew: { token: current.token } }));
    const renewed = await ws.next((m) => m.renewed !== undefined);
    assert.ok(renewed.renewed.expiresAt > Date.now() / 1000);
    const cmd = placeOrder();
    ws.send(JSON.stringify({ command: cmd }));
    assert.equal((await ws.next(ackOf(cmd.id))).ack.seq, base + 1);
    ws.close();
  } finally {
    short.proc.kill("SIGTERM");
  }
});
