import { describe, expect, it } from "vitest";
import { HH, O1, O2, placed, step, welcome } from "./fixtures";
import { emptyView, foldEvents } from "./projection";
import type { IdentifiedCommand } from "./protocol";
import { SETTLED_KEPT, UNREACHABLE_AFTER, initialState, pendingCommands, reducer } from "./state";
import type { HouseholdState } from "./state";

const cmd = (id: string): IdentifiedCommand => ({ id, type: "CompleteOrder", payload: { orderId: O1 } });
const queue = (s: HouseholdState, id: string) => reducer(s, { type: "queue", command: cmd(id), at: "2026-11-27T10:00:00Z" });

describe("the hook's reducer", () => {
  it("takes the welcome's state, then folds events in seq order", () => {
    let s = initialState();
    const at2 = foldEvents(emptyView(), [placed(1), step(2, "StockReserved")]).view;
    s = reducer(s, { type: "message", message: welcome(at2) });
    expect(s).toMatchObject({ welcomed: true, status: "open", view: { seq: 2 } });
    s = reducer(s, { type: "message", message: { event: step(2, "StockReserved") } }); // replayed: no-op
    s = reducer(s, { type: "message", message: { event: step(3, "PaymentCaptured") } });
    expect(s.view.seq).toBe(3);
    expect(s.view.orders[0]?.status).toBe("paymentCaptured");
  });

  it("takes the welcome's count of older orders and puts a page of them before its own", () => {
    const full = foldEvents(emptyView(), [placed(1), placed(2, O2), step(3, "StockReserved"), step(4, "StockReserved", O2)]).view;
    const [o1, o2] = full.orders;
    if (!o1 || !o2) throw new Error("fixture");
    // Welcomed at 2 with O2 only (its state at 2); O1 is older.
    let s = reducer(initialState(), { type: "message", message: welcome({ seq: 2, orders: [{ ...o2, status: "placed", timeline: o2.timeline.slice(0, 1) }], chores: [], members: [] }, 1) });
    expect(s.older).toEqual({ olderOrders: 1, olderChores: 0 });
    s = reducer(s, { type: "message", message: { event: step(3, "StockReserved") } }); // O1's: not held
    expect(s.view.orders.map((o) => o.id)).toEqual([O2]);
    // A page that does not continue ours, is behind our view, or is another list's, is dropped.
    const page = { seq: 4, orders: [o1], olderOrders: 0 };
    expect(reducer(s, { type: "older", list: "orders", before: 2, page })).toBe(s);
    expect(reducer(s, { type: "older", list: "orders", before: 1, page: { ...page, seq: 2 } })).toBe(s);
    expect(reducer(s, { type: "older", list: "chores", before: 1, page })).toBe(s);
    // The page at 4 (newer than our 3): O1 goes first; event 4 then moves O2 only.
    s = reducer(s, { type: "older", list: "orders", before: 1, page });
    expect(s.older.olderOrders).toBe(0);
    expect(s.view.orders.map((o) => o.id)).toEqual([O1, O2]);
    s = reducer(s, { type: "message", message: { event: step(4, "StockReserved", O2) } });
    expect(s.view).toEqual(full);
    // A welcome starts over from the server's recent orders.
    s = reducer(s, { type: "message", message: welcome({ seq: 4, orders: [o2], chores: [], members: [] }, 1) });
    expect(s).toMatchObject({ older: { olderOrders: 1, olderChores: 0 }, view: { seq: 4, orders: [o2] } });
  });

  it("pages older chores the same way, each list by its own count", () => {
    const [c1, c2] = ["c-1", "c-2"].map((id, i) => ({
      id,
      title: `Chore ${i}`,
      assignee: "m-1",
      dueAt: "2026-12-02T08:00:00Z",
      everyDays: null,
      status: "scheduled" as const,
      pendingSwap: null,
      createdBy: "m-1",
      closedBy: null,
      scheduledAt: "2026-12-01T08:00:00Z",
      previous: null,
      skipReason: null,
      timeline: [],
    }));
    if (!c1 || !c2) throw new Error("fixture");
    let s = reducer(initialState(), { type: "message", message: welcome({ seq: 2, orders: [], chores: [c2], members: [] }, 0, 1) });
    expect(s.older).toEqual({ olderOrders: 0, olderChores: 1 });
    s = reducer(s, { type: "older", list: "chores", before: 1, page: { seq: 2, chores: [c1], olderChores: 0 } });
    expect(s.older).toEqual({ olderOrders: 0, olderChores: 0 });
    expect(s.view.chores.map((c) => c.id)).toEqual(["c-1", "c-2"]);
  });

  it("asks for a resync from its seq on a gap, once, and keeps the view", () => {
    let s = reducer(initialState(), { type: "message", message: welcome(foldEvents(emptyView(), [placed(1)]).view) });
    const gap = reducer(s, { type: "message", message: { event: step(3, "PaymentCaptured") } });
    expect(gap.resyncFrom).toBe(1);
    expect(gap.view).toBe(s.view);
    expect(reducer(gap, { type: "message", message: { event: step(4, "OrderConfirmed") } })).toBe(gap);
    s = reducer(gap, { type: "syncSent", since: 1 });
    expect(s.resyncFrom).toBeNull();
  });

  it("tracks commands: pending, acknowledged (duplicate too), rejected, failed", () => {
    let s = ["a", "b", "c", "d", "e"].reduce(queue, initialState());
    expect(pendingCommands(s).map((c) => c.id)).toEqual(["a", "b", "c", "d", "e"]);
    expect(queue(s, "a")).toBe(s); // same id: one entry
    s = reducer(s, { type: "message", message: { ack: { id: "a", status: "accepted", seq: 5 } } });
    s = reducer(s, { type: "message", message: { ack: { id: "b", status: "duplicate", seq: 5 } } });
    s = reducer(s, { type: "message", message: { rejected: { id: "c", code: "not_ready", message: "not ready" } } });
    s = reducer(s, { type: "message", message: { error: { id: "d", code: "invalid_payload", message: "bad" } } });
    s = reducer(s, { type: "message", message: { error: { id: "e", code: "unavailable", message: "store down" } } });
    const by = Object.fromEntries(s.commands.map((c) => [c.command.id, c]));
    expect(by.a?.state).toEqual({ kind: "acknowledged", duplicate: false, seq: 5 });
    expect(by.b?.state).toEqual({ kind: "acknowledged", duplicate: true, seq: 5 });
    expect(by.c?.state).toEqual({ kind: "rejected", code: "not_ready", message: "not ready" });
    expect(by.d?.state).toEqual({ kind: "failed", code: "invalid_payload", message: "bad" });
    expect(by.e?.state).toEqual({ kind: "pending" }); // transient: resent on reconnect
    expect(by.e?.lastError?.code).toBe("unavailable");
    expect(pendingCommands(s).map((c) => c.id)).toEqual(["e"]);
  });

  it("shows errors not tied to a command, and ignores acks of unknown ids", () => {
    let s = reducer(initialState(), { type: "message", message: { error: { code: "rate_limited", message: "slow down" } } });
    expect(s.lastError?.code).toBe("rate_limited");
    s = reducer(s, { type: "dismissError" });
    expect(s.lastError).toBeNull();
    expect(reducer(s, { type: "message", message: { ack: { id: "zz", status: "accepted", seq: 1 } } })).toBe(s);
  });

  it("forgets a connection's welcome when it closes, and keeps only the last settled commands", () => {
    let s = reducer(initialState(), { type: "message", message: welcome({ seq: 0, orders: [], chores: [], members: [] }) });
    s = reducer(s, { type: "status", status: "offline" });
    expect(s).toMatchObject({ welcomed: false, status: "offline" });
    for (let i = 0; i < SETTLED_KEPT + 5; i++) {
      s = queue(s, `c${i}`);
      s = reducer(s, { type: "message", message: { ack: { id: `c${i}`, status: "accepted", seq: i } } });
    }
    s = queue(s, "pending");
    expect(s.commands).toHaveLength(SETTLED_KEPT + 1);
    expect(s.commands[0]?.command.id).toBe("c5");
    expect(HH).toBeTruthy();
  });
});

describe("the connection's state", () => {
  const closed = (s: HouseholdState, nextTryAt: number | null = 1_000, offline = false) => reducer(s, { type: "disconnected", offline, nextTryAt });

  it("tells first connect, reconnecting, unreachable, offline and closed apart", () => {
    let s = closed(initialState());
    expect(s).toMatchObject({ status: "connecting", failures: 1, nextTryAt: 1_000 });
    s = reducer(s, { type: "message", message: welcome({ seq: 0, orders: [], chores: [], members: [] }) });
    expect(s).toMatchObject({ status: "open", failures: 0, nextTryAt: null, everWelcomed: true });
    s = closed(s, 2_000);
    expect(s).toMatchObject({ status: "reconnecting", welcomed: false, nextTryAt: 2_000 });
    for (let i = 1; i < UNREACHABLE_AFTER; i++) s = closed(s, 3_000 + i);
    expect(s).toMatchObject({ status: "unreachable", failures: UNREACHABLE_AFTER });
    // The browser went offline: offline, however many failures.
    expect(closed(s, null, true)).toMatchObject({ status: "offline", nextTryAt: null });
    // No retry scheduled (replaced by a newer socket): closed.
    expect(closed(s, null)).toMatchObject({ status: "closed" });
    // Back online after having been live: a reconnect.
    expect(reducer(closed(s, null, true), { type: "status", status: "connecting" }).status).toBe("reconnecting");
    // An open socket resets the count.
    expect(reducer(s, { type: "status", status: "open" })).toMatchObject({ failures: 0, status: "open" });
  });
});
