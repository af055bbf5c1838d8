// The household projection: the same fold as crates/core/src/projection.rs
// (`HouseholdView::apply`), so the client's board equals the server's `welcome.state`.
// projection.golden.test.ts holds it to the Rust fold on vectors that Rust writes
// (crates/core/tests/golden.rs); change the Rust fold first, then this one.
import type {
  ChoreStatus,
  ChoreView,
  EventEnvelope,
  HouseholdView,
  MemberView,
  OrderStatus,
  OrderView,
} from "./generated";

export const emptyView = (): HouseholdView => ({ seq: 0, orders: [], chores: [], members: [] });

/** An event of the membership domain (the roster's: its payload names the household). */
export type MemberEnvelope = Extract<EventEnvelope, { payload: { householdId: string } }>;

export const isMemberEvent = (event: EventEnvelope): event is MemberEnvelope => "householdId" in event.payload;

/** Folds one membership event, as `HouseholdView::apply_member`: a joining adds the
 * member (once), a departure takes them out, a role change sets their role (adding a
 * member the view did not have). */
function applyMember(members: MemberView[], event: MemberEnvelope): MemberView[] {
  const p = event.payload;
  const index = members.findIndex((m) => m.id === p.memberId);
  switch (event.type) {
    case "MemberJoined":
      return index >= 0 ? members : [...members, { id: p.memberId, name: p.name, role: event.payload.role }];
    case "MemberRoleChanged": {
      if (index < 0) return [...members, { id: p.memberId, name: p.name, role: event.payload.role }];
      return members.map((m, i) => (i === index ? { ...m, role: event.payload.role } : m));
    }
    case "MemberRemoved":
    case "MemberLeft":
      return index < 0 ? members : members.filter((m) => m.id !== p.memberId);
  }
}

/** An event of the chore domain (the envelope narrowed by its `type`). */
type ChoreEnvelope = Extract<EventEnvelope, { payload: { choreId: string } }>;

const isChoreEvent = (event: EventEnvelope): event is ChoreEnvelope => "choreId" in event.payload;

const isOpen = (status: ChoreStatus) => status === "scheduled" || status === "due" || status === "overdue";

/** The status a chore event moves a chore to, as `ChoreStatus::after` in Rust. */
function choreStatusAfter(status: ChoreStatus, event: ChoreEnvelope): ChoreStatus {
  switch (event.type) {
    case "ChoreScheduled":
      return "scheduled";
    case "ChoreReminderSent":
      return isOpen(status) ? "due" : status;
    case "ChoreEscalated":
      return isOpen(status) ? "overdue" : status;
    case "ChoreCompleted":
      return "done";
    case "ChoreSkipped":
      return "skipped";
    case "SwapProposed":
    case "SwapAccepted":
    case "SwapDeclined":
      return status;
  }
}

/** Folds one chore event (its seq already checked), as `HouseholdView::apply_chore`. */
function applyChore(chores: ChoreView[], event: ChoreEnvelope): ChoreView[] {
  const at = event.createdAt;
  let list = chores;
  if (event.type === "ChoreScheduled" && !list.some((c) => c.id === event.payload.choreId)) {
    const p = event.payload;
    list = [
      ...list,
      {
        id: p.choreId,
        title: p.title,
        assignee: p.assignee,
        dueAt: p.dueAt,
        everyDays: p.everyDays ?? null,
        status: "scheduled",
        createdBy: p.createdBy,
        scheduledAt: at,
        previous: p.previous ?? null,
        pendingSwap: null,
        closedBy: null,
        skipReason: null,
        timeline: [],
      },
    ];
  }
  const index = list.findIndex((c) => c.id === event.payload.choreId);
  const current = list[index];
  const last = current?.timeline[current.timeline.length - 1];
  if (current === undefined || (last !== undefined && last.seq >= event.seq)) return list;
  const chore: ChoreView = { ...current, status: choreStatusAfter(current.status, event) };
  switch (event.type) {
    case "SwapProposed":
      chore.pendingSwap = event.payload.to;
      break;
    case "SwapAccepted":
      chore.assignee = event.payload.to;
      chore.pendingSwap = null;
      break;
    case "SwapDeclined":
      chore.pendingSwap = null;
      break;
    case "ChoreCompleted":
      chore.closedBy = event.payload.by;
      chore.pendingSwap = null;
      break;
    case "ChoreSkipped":
      chore.closedBy = event.payload.by;
      chore.skipReason = event.payload.reason ?? null;
      chore.pendingSwap = null;
      break;
    default:
      break;
  }
  chore.timeline = [...current.timeline, { seq: event.seq, at, event: event.type, status: chore.status }];
  const next = list.slice();
  next[index] = chore;
  return next;
}

export type Applied =
  /** Folded in: the view moved to the event's seq. */
  | { kind: "applied"; view: HouseholdView }
  /** At or before the view's seq: already folded, nothing changes. */
  | { kind: "stale"; view: HouseholdView }
  /** After seq + 1: events were missed; the view is unchanged (resync from `view.seq`). */
  | { kind: "gap"; view: HouseholdView; at: number; got: number };

/** An event of the order domain. */
type OrderEnvelope = Exclude<EventEnvelope, ChoreEnvelope | MemberEnvelope>;

/** The status an event moves an order to (`null`: the status does not change). */
function statusAfter(event: OrderEnvelope): OrderStatus | null {
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
    // The payment provider refunded on its own: the status stays.
    case "RefundedByProvider":
      return null;
  }
}

/** Folds one event, as `HouseholdView::apply` does. Pure: returns a new view. */
export function applyEvent(view: HouseholdView, event: EventEnvelope): Applied {
  if (event.seq <= view.seq) return { kind: "stale", view };
  if (event.seq !== view.seq + 1) {
    return { kind: "gap", view, at: view.seq, got: event.seq };
  }
  const chores = view.chores ?? [];
  // A view cached before members were in it has none yet: the welcome brings them.
  const members = view.members ?? [];
  if (isChoreEvent(event)) {
    return { kind: "applied", view: { seq: event.seq, orders: view.orders, chores: applyChore(chores, event), members } };
  }
  if (isMemberEvent(event)) {
    return { kind: "applied", view: { seq: event.seq, orders: view.orders, chores, members: applyMember(members, event) } };
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
      cancelReason: null,
      completedBy: null,
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
    return { kind: "applied", view: { seq: event.seq, orders, chores, members } };
  }
  const order: OrderView = { ...current };
  const status = statusAfter(event);
  if (status !== null) order.status = status;
  if (event.type === "OrderRejected") order.rejection = event.payload.reason;
  if (event.type === "OrderCancelled") {
    order.cancelledBy = event.payload.by;
    order.cancelReason = event.payload.reason ?? null;
  }
  if (event.type === "OrderCompleted") order.completedBy = event.payload.by;
  if (event.type === "RefundIssued") order.refunded = true;
  if (event.type === "StockReleased") order.stockReleased = true;
  // The provider gave the whole total back on its own.
  if (event.type === "RefundedByProvider" && event.payload.amountCents >= order.totalCents) order.refunded = true;
  order.timeline = [
    ...current.timeline,
    { seq: event.seq, at, event: event.type, status: order.status },
  ];
  const next = orders.slice();
  next[index] = order;
  return { kind: "applied", view: { seq: event.seq, orders: next, chores, members } };
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
