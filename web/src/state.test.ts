import { describe, expect, it } from "vitest";
import { HH, O1, placed, step, welcome } from "./fixtures";
import { emptyView, foldEvents } from "./projection";
import type { IdentifiedCommand } from "./protocol";
import { SETTLED_KEPT, initialState, pendingCommands, reducer } from "./state";
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
    let s = reducer(initialState(), { type: "message", message: welcome({ seq: 0, orders: [] }) });
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
