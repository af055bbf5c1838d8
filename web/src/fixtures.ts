// Test fixtures: events as the server sends them.
import type { EventEnvelope, Event, HouseholdView } from "./generated";

export const HH = "0191a000-0000-7000-8000-000000000001";
export const ANN = "0191a000-0000-7000-8000-0000000000a1";
export const O1 = "0191a000-0000-7000-8000-0000000000f1";
export const O2 = "0191a000-0000-7000-8000-0000000000f2";

export function envelope(seq: number, event: Event, aggregateId: string = event.payload.orderId): EventEnvelope {
  return {
    id: `0191a000-0000-7000-8000-${String(seq).padStart(12, "0")}`,
    tenant: HH,
    seq,
    aggregateId,
    version: 1,
    schemaVersion: 1,
    metadata: { commandId: HH, causationId: HH, correlationId: HH, actor: { kind: "member", id: ANN } },
    createdAt: `2026-11-27T10:00:${String(seq).padStart(2, "0")}Z`,
    requiresJob: false,
    ...event,
  } as EventEnvelope;
}

type Placed = Extract<Event, { type: "OrderPlaced" }>["payload"];

export const placed = (seq: number, orderId = O1, payload: Partial<Placed> = {}) =>
  envelope(seq, {
    type: "OrderPlaced",
    payload: {
      orderId,
      lines: [{ sku: "milk", name: "Milk", quantity: 2, unitPriceCents: 129 }],
      totalCents: 258,
      placedBy: ANN,
      ...payload,
    },
  });

export const cancelled = (seq: number, orderId = O1) =>
  envelope(seq, { type: "OrderCancelled", payload: { orderId, by: { kind: "member", id: ANN } } } as Event);

export const step = (seq: number, type: "StockReserved" | "PaymentCaptured" | "OrderConfirmed" | "OrderReady", orderId = O1) => {
  switch (type) {
    case "StockReserved":
      return envelope(seq, { type, payload: { orderId, reservationId: "r1" } });
    case "PaymentCaptured":
      return envelope(seq, { type, payload: { orderId, paymentId: "p1", amountCents: 258 } });
    default:
      return envelope(seq, { type, payload: { orderId } });
  }
};

export const welcome = (state: HouseholdView, olderOrders = 0, olderChores = 0) => ({
  welcome: { room: HH, connection: "c-1", seq: state.seq, state, olderOrders, olderChores },
});
