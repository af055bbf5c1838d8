import { describe, expect, it } from "vitest";
import { envelope, placed, step, ANN, O1, O2 } from "./fixtures";
import { applyEvent, emptyView, foldEvents } from "./projection";
import type { HouseholdView } from "./generated";

const fold = (events: Parameters<typeof foldEvents>[1]): HouseholdView => foldEvents(emptyView(), events).view;

describe("applyEvent (mirror of HouseholdView::apply)", () => {
  it("places an order and walks it to ready with a timeline", () => {
    const view = fold([placed(1), step(2, "StockReserved"), step(3, "PaymentCaptured"), step(4, "OrderConfirmed"), step(5, "OrderReady")]);
    expect(view.seq).toBe(5);
    const order = view.orders[0];
    expect(order).toMatchObject({ id: O1, status: "ready", totalCents: 258, placedBy: ANN, readyAt: null, note: null });
    expect(order?.timeline.map((t) => [t.seq, t.event, t.status])).toEqual([
      [1, "OrderPlaced", "placed"],
      [2, "StockReserved", "stockReserved"],
      [3, "PaymentCaptured", "paymentCaptured"],
      [4, "OrderConfirmed", "confirmed"],
      [5, "OrderReady", "ready"],
    ]);
    expect(order?.placedAt).toBe("2026-11-27T10:00:01Z");
  });

  it("ignores an event at or below seq and reports a gap above seq + 1", () => {
    const view = fold([placed(1), step(2, "StockReserved")]);
    expect(applyEvent(view, step(2, "StockReserved"))).toEqual({ kind: "stale", view });
    expect(applyEvent(view, step(4, "OrderConfirmed"))).toEqual({ kind: "gap", view, at: 2, got: 4 });
  });

  it("moves on past events of orders it does not hold, or that are already past them", () => {
    // Only O2 is held (O1 was placed before the welcome's orders).
    const full = fold([placed(1), placed(2, O2), step(3, "StockReserved"), step(4, "StockReserved", O2)]);
    const recent: HouseholdView = { seq: 2, orders: full.orders.filter((o) => o.id === O2).map((o) => ({ ...o, timeline: o.timeline.slice(0, 1), status: "placed" })), chores: [], members: [] };
    const at3 = applyEvent(recent, step(3, "StockReserved"));
    expect(at3).toMatchObject({ kind: "applied", view: { seq: 3 } });
    expect(at3.view.orders).toBe(recent.orders);
    // O1 read later at seq 4 (a page of older orders), put before ours: event 4 moves O2 only.
    const merged: HouseholdView = { seq: 3, orders: [full.orders[0]!, ...at3.view.orders], chores: [], members: [] };
    const at4 = applyEvent(merged, step(4, "StockReserved", O2)).view;
    expect(at4).toEqual(full);
    // An event of O1 the page already holds changes nothing but the seq.
    const page = { seq: 3, orders: [full.orders[0]!], chores: [], members: [] };
    expect(applyEvent({ ...page, seq: 2 }, step(3, "StockReserved")).view).toEqual(page);
  });

  it("records cancellation, refund, release and rejection like the core", () => {
    const view = fold([
      placed(1),
      placed(2, O2),
      envelope(3, { type: "OrderCancelled", payload: { orderId: O1, by: { kind: "member", id: ANN }, reason: "oops" } }),
      envelope(4, { type: "RefundIssued", payload: { orderId: O1, refundId: "f", amountCents: 258 } }),
      envelope(5, { type: "StockReleased", payload: { orderId: O1 } }),
      envelope(6, { type: "OrderRejected", payload: { orderId: O2, reason: { code: "outOfStock", sku: "milk" } } }),
    ]);
    const [o1, o2] = view.orders;
    expect(o1).toMatchObject({ status: "cancelled", cancelledBy: { kind: "member", id: ANN }, refunded: true, stockReleased: true });
    expect(o1?.timeline.map((t) => t.status)).toEqual(["placed", "cancelled", "cancelled", "cancelled"]);
    expect(o2).toMatchObject({ status: "rejected", rejection: { code: "outOfStock", sku: "milk" } });
  });

  it("shows stock lost after confirmation as a rejection, and a provider's own refund as refunded", () => {
    const view = fold([
      placed(1),
      placed(2, O2),
      step(3, "StockReserved"),
      step(4, "PaymentCaptured"),
      step(5, "OrderConfirmed"),
      envelope(6, { type: "OrderRejected", payload: { orderId: O1, reason: { code: "stockLost", sku: "bread" } } }),
      envelope(7, { type: "RefundedByProvider", payload: { orderId: O2, paymentId: "p", refundId: "r", amountCents: 1 } }),
    ]);
    const [o1, o2] = view.orders;
    expect(o1).toMatchObject({ status: "rejected", rejection: { code: "stockLost", sku: "bread" }, refunded: false });
    // A part of the total given back: recorded in the timeline, not refunded as a whole.
    expect(o2).toMatchObject({ status: "placed", refunded: false });
    expect(o2?.timeline.map((t) => [t.event, t.status])).toEqual([
      ["OrderPlaced", "placed"],
      ["RefundedByProvider", "placed"],
    ]);
    const whole = fold([
      placed(1),
      envelope(2, { type: "RefundedByProvider", payload: { orderId: O1, paymentId: "p", refundId: "r", amountCents: view.orders[0]!.totalCents } }),
    ]);
    expect(whole.orders[0]).toMatchObject({ status: "placed", refunded: true });
  });

  it("keeps a cancelled order cancelled when a provider's late success is recorded", () => {
    const view = fold([
      placed(1),
      envelope(2, { type: "OrderCancelled", payload: { orderId: O1, by: { kind: "member", id: ANN } } }),
      envelope(3, { type: "StockReservedAfterClose", payload: { orderId: O1, reservationId: "r" } }),
      envelope(4, { type: "PaymentCapturedAfterClose", payload: { orderId: O1, paymentId: "p", amountCents: 258 } }),
      envelope(5, { type: "StockReleased", payload: { orderId: O1 } }),
      envelope(6, { type: "RefundIssued", payload: { orderId: O1, refundId: "f", amountCents: 258 } }),
    ]);
    const [o1] = view.orders;
    expect(o1).toMatchObject({ status: "cancelled", refunded: true, stockReleased: true });
    expect(o1?.timeline.map((t) => [t.event, t.status])).toEqual([
      ["OrderPlaced", "placed"],
      ["OrderCancelled", "cancelled"],
      ["StockReservedAfterClose", "cancelled"],
      ["PaymentCapturedAfterClose", "cancelled"],
      ["StockReleased", "cancelled"],
      ["RefundIssued", "cancelled"],
    ]);
  });

  it("keeps the first OrderPlaced of an id and moves seq for events of unknown orders", () => {
    const view = fold([placed(1), placed(2), step(3, "StockReserved", O2)]);
    expect(view.seq).toBe(3);
    expect(view.orders).toHaveLength(1);
    expect(view.orders[0]?.timeline.map((t) => t.seq)).toEqual([1, 2]);
  });

  it("does not mutate its input", () => {
    const before = fold([placed(1)]);
    const copy = JSON.parse(JSON.stringify(before)) as HouseholdView;
    applyEvent(before, step(2, "StockReserved"));
    expect(before).toEqual(copy);
  });
});
