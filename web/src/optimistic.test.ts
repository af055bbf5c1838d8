import { describe, expect, it } from "vitest";
import { ANN, O1, cancelled, placed, welcome } from "./fixtures";
import { boardOrders } from "./optimistic";
import { emptyView, foldEvents } from "./projection";
import type { IdentifiedCommand } from "./protocol";
import { initialState, reducer } from "./state";
import type { HouseholdState } from "./state";

const O3 = "0191a000-0000-7000-8000-0000000000f3";
const place: IdentifiedCommand = {
  id: "c-place",
  type: "PlaceOrder",
  payload: { orderId: O3, lines: [{ sku: "eggs", quantity: 2, unitPriceCents: 300 }], note: "for the cake" },
};
const cancel: IdentifiedCommand = { id: "c-cancel", type: "CancelOrder", payload: { orderId: O1 } };
const complete: IdentifiedCommand = { id: "c-complete", type: "CompleteOrder", payload: { orderId: O1 } };
const queue = (s: HouseholdState, command: IdentifiedCommand) => reducer(s, { type: "queue", command, at: "2026-11-27T10:05:00Z" });
const at = (view = foldEvents(emptyView(), [placed(1)]).view) => reducer(initialState(), { type: "message", message: welcome(view) });
/** The server's OrderPlaced for `place`, at `seq`. */
const placedO3 = (seq: number) =>
  placed(seq, O3, { lines: [{ sku: "eggs", name: "Eggs", quantity: 2, unitPriceCents: 300 }], totalCents: 600, note: "for the cake" });

describe("the optimistic board", () => {
  it("shows an order placed offline at once, unconfirmed, with its lines, total and note", () => {
    let s = reducer(at(), { type: "status", status: "offline" });
    s = queue(s, place);
    const catalog = new Map([["eggs", { sku: "eggs", name: "Eggs", unitPriceCents: 300, available: 10 }]]);
    const orders = boardOrders(s, ANN, catalog);
    expect(orders.map((o) => [o.id, o.pending])).toEqual([
      [O1, null],
      [O3, "placing"],
    ]);
    expect(orders[1]).toMatchObject({ status: "placed", totalCents: 600, note: "for the cake", placedBy: ANN, placedAt: "2026-11-27T10:05:00Z", timeline: [] });
    // Named from the catalog this device read; the command itself names skus only.
    expect(orders[1]?.lines).toEqual([{ sku: "eggs", name: "Eggs", quantity: 2, unitPriceCents: 300 }]);
    // Without the catalog at hand, the sku and the price shown.
    expect(boardOrders(s, ANN)[1]?.lines).toEqual([{ sku: "eggs", name: "eggs", quantity: 2, unitPriceCents: 300 }]);
    // The server's view is untouched: the overlay is derived, never folded in.
    expect(s.view.orders.map((o) => o.id)).toEqual([O1]);
  });

  it("reconciles: stays unconfirmed after the ack until the event is in, then is the server's order", () => {
    let s = queue(at(), place);
    s = reducer(s, { type: "message", message: { ack: { id: place.id, status: "accepted", seq: 2 } } });
    // Acked at 2, view at 1: the event is on its way; the order does not flicker away.
    expect(boardOrders(s, ANN).map((o) => [o.id, o.pending])).toEqual([
      [O1, null],
      [O3, "placing"],
    ]);
    s = reducer(s, { type: "message", message: { event: placedO3(2) } });
    const orders = boardOrders(s, ANN);
    expect(orders.map((o) => [o.id, o.pending])).toEqual([
      [O1, null],
      [O3, null],
    ]);
    expect(orders).toHaveLength(2); // exactly one O3
  });

  it("reconciles through a welcome that already holds the order (a resend answered duplicate)", () => {
    let s = queue(reducer(at(), { type: "status", status: "offline" }), place);
    const server = foldEvents(emptyView(), [placed(1), placedO3(2)]).view;
    s = reducer(s, { type: "message", message: welcome(server) });
    expect(boardOrders(s, ANN).map((o) => [o.id, o.pending])).toEqual([
      [O1, null],
      [O3, null],
    ]);
    s = reducer(s, { type: "message", message: { ack: { id: place.id, status: "duplicate", seq: 2 } } });
    expect(boardOrders(s, ANN)).toHaveLength(2);
  });

  it("rolls a refused order back: it leaves the board and the refusal stays to be told", () => {
    let s = queue(at(), place);
    s = reducer(s, { type: "message", message: { rejected: { id: place.id, code: "ready_at_not_in_future", message: "ready-at must be in the future" } } });
    expect(boardOrders(s, ANN).map((o) => o.id)).toEqual([O1]);
    expect(s.commands[0]?.state).toMatchObject({ kind: "rejected", code: "ready_at_not_in_future" });
    // A failed one (bad input) too.
    let f = queue(at(), place);
    f = reducer(f, { type: "message", message: { error: { id: place.id, code: "invalid_payload", message: "bad" } } });
    expect(boardOrders(f, ANN).map((o) => o.id)).toEqual([O1]);
  });

  it("keeps a command that met a transient error in flight", () => {
    let s = queue(at(), place);
    s = reducer(s, { type: "message", message: { error: { id: place.id, code: "unavailable", message: "store down" } } });
    expect(boardOrders(s, ANN).map((o) => o.pending)).toEqual([null, "placing"]);
  });

  it("shows a cancel as cancelling until the order is cancelled, and rolls it back when refused", () => {
    let s = queue(at(), cancel);
    expect(boardOrders(s, ANN)[0]).toMatchObject({ status: "placed", pending: "cancelling" });
    s = reducer(s, { type: "message", message: { ack: { id: cancel.id, status: "accepted", seq: 2 } } });
    expect(boardOrders(s, ANN)[0]?.pending).toBe("cancelling");
    s = reducer(s, { type: "message", message: { event: cancelled(2) } });
    expect(boardOrders(s, ANN)[0]).toMatchObject({ status: "cancelled", pending: null });

    let r = queue(at(), cancel);
    r = reducer(r, { type: "message", message: { rejected: { id: cancel.id, code: "cannot_cancel", message: "cannot cancel" } } });
    expect(boardOrders(r, ANN)[0]).toMatchObject({ status: "placed", pending: null });
  });

  it("shows a collect as collecting", () => {
    const s = queue(at(), complete);
    expect(boardOrders(s, ANN)[0]?.pending).toBe("collecting");
  });

  it("survives a reload: the cached commands give the same board", () => {
    const s = queue(reducer(at(), { type: "status", status: "offline" }), place);
    const copy = JSON.parse(JSON.stringify({ view: s.view, commands: s.commands })) as HouseholdState;
    const reloaded = initialState(copy.view, copy.commands);
    expect(boardOrders(reloaded, ANN)).toEqual(boardOrders(s, ANN));
  });
});
