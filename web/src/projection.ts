// The household projection: the same fold as crates/core/src/projection.rs
// (`HouseholdView::apply`), so the client's board equals the server's `welcome.state`.
// projection.golden.test.ts holds it to the Rust fold on vectors that Rust writes
// (crates/core/tests/golden.rs); change the Rust fold first, then this one.
import type {
  EventEnvelope,
  HouseholdView,
  OrderStatus,
  OrderView,
} from "./generated";

export const emptyView = (): HouseholdView => ({ seq: 0, orders: [] });

export type Applied =
  /** Folded in: the view moved to the event's seq. */
  | { kind: "applied"; view: HouseholdView }
  /** At or before the view's seq: already folded, nothing changes. */
  | { kind: "stale"; view: HouseholdView }
  /** After seq + 1: events were missed; the view is unchanged (resync from `view.seq`). */
  | { kind: "gap"; view: HouseholdView; at: number; got: number };

/** The status an event moves an order to (`null`: the status does not change). */
function statusAfter(event: EventEnvelope): OrderStatus | null {
  switch (event.type) {
    case "OrderPlaced":
      return null;
    case "StockReserved":
      return "stockReserved";
    case "PaymentCaptured":
      return "paymentCaptured";
    case "OrderConfirmed":
      return "confirmed";
    case "OrderRejected":
      return "rejected";
    case "OrderReady":
      return "ready";
    case "OrderCancelled":
      return "cancelled";
    case "OrderCompleted":
      return "completed";
    case "RefundIssued":
    case "StockReleased":
    // Found at a provider after the order closed: the status stays, the
    // compensation follows.
    case "StockReservedAfterClose":
    case "PaymentCapturedAfterClose":
      return null;
  }
}

/** Folds one event, as `HouseholdView::apply` does. Pure: returns a new view. */
export function applyEvent(view: HouseholdView, event: EventEnvelope): Applied {
  if (event.seq <= view.seq) return { kind: "stale", view };
  if (event.seq !== view.seq + 1) {
    return { kind: "gap", view, at: view.seq, got: event.seq };
  }
  const at = event.createdAt;
  let orders = view.orders;
  if (event.type === "OrderPlaced" && !orders.some((o) => o.id === event.payload.orderId)) {
    const p = event.payload;
    const placed: OrderView = {
      id: p.orderId,
      status: "placed",
      lines: p.lines,
      totalCents: p.totalCents,
      readyAt: p.readyAt ?? null,
      note: p.note ?? null,
      placedBy: p.placedBy,
      placedAt: at,
      rejection: null,
      cancelledBy: null,
      refunded: false,
      stockReleased: false,
      timeline: [],
    };
    orders = [...orders, placed];
  }
  const index = orders.findIndex((o) => o.id === event.aggregateId);
  const current = orders[index];
  // No such order here (placed before the welcome's orders and not loaded: the event is
  // in any page of older orders read later), or one already at or past this event (read
  // from a newer page of older orders): the view moves on, the order stays.
  const last = current?.timeline[current.timeline.length - 1];
  if (current === undefined || (last !== undefined && last.seq >= event.seq)) {
    return { kind: "applied", view: { seq: event.seq, orders } };
  }
  const order: OrderView = { ...current };
  const status = statusAfter(event);
  if (status !== null) order.status = status;
  if (event.type === "OrderRejected") order.rejection = event.payload.reason;
  if (event.type === "OrderCancelled") order.cancelledBy = event.payload.by;
  if (event.type === "RefundIssued") order.refunded = true;
  if (event.type === "StockReleased") order.stockReleased = true;
  order.timeline = [
    ...current.timeline,
    { seq: event.seq, at, event: event.type, status: order.status },
  ];
  const next = orders.slice();
  next[index] = order;
  return { kind: "applied", view: { seq: event.seq, orders: next } };
}

/** Folds events in seq order from `view`; stops at a gap. */
export function foldEvents(view: HouseholdView, events: EventEnvelope[]): Applied {
  let result: Applied = { kind: "stale", view };
  let current = view;
  for (const event of events) {
    const step = applyEvent(current, event);
    if (step.kind === "gap") return step;
    if (step.kind === "applied") result = step;
    current = step.view;
  }
  return { ...result, view: current } as Applied;
}
