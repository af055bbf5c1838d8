// The board as the member sees it: the server's projection (state.view) with the effect of
// their own commands that are not yet in it laid over it. Pure, derived on every render,
// never stored: the view stays the server's truth (and the fold stays the core's mirror).
//
// - A command is in flight while pending, and after its ack until the view reaches the
//   ack's seq (the event is on its way): its effect shows, so nothing flickers.
// - PlaceOrder in flight: the order is on the board at once, `unconfirmed`, until the
//   server's OrderPlaced with its id is in the view.
// - CancelOrder / CompleteOrder in flight: the order shows as cancelling / collecting.
// - A refused (rejected / failed) command is not in flight: its effect is gone (rolled
//   back) and the board shows a sentence for it (messages.ts).
import type { CommandEntry, HouseholdState } from "./state";
import type { CatalogItem, HouseholdView, MemberId, OrderLine, OrderView, RequestedLine } from "./generated";

export type Pending = "placing" | "cancelling" | "collecting";

export type BoardOrder = OrderView & {
  /** What this member's unconfirmed command is doing to the order (null: nothing). */
  pending: Pending | null;
};

export function inFlight(entry: CommandEntry, view: HouseholdView): boolean {
  if (entry.state.kind === "pending") return true;
  return entry.state.kind === "acknowledged" && entry.state.seq > view.seq;
}

/** A line the member asked for, as it will read once placed: the name and price from the
 * catalog as this device last read it (the server fixes both from its own), the price
 * shown if the catalog is not at hand, the sku if nothing names it. */
export function shownLine(line: RequestedLine, catalog: ReadonlyMap<string, CatalogItem>): OrderLine {
  const item = catalog.get(line.sku);
  return {
    sku: line.sku,
    name: item?.name ?? line.sku,
    quantity: line.quantity,
    unitPriceCents: line.unitPriceCents ?? item?.unitPriceCents ?? 0,
  };
}

/** The orders to show, in the order they were placed (unconfirmed ones last). `catalog`
 * names the lines of orders not yet placed. */
export function boardOrders(
  state: Pick<HouseholdState, "view" | "commands">,
  me: MemberId,
  catalog: ReadonlyMap<string, CatalogItem> = new Map(),
): BoardOrder[] {
  const { view, commands } = state;
  const marks = new Map<string, Pending>();
  const placing: BoardOrder[] = [];
  const held = new Set(view.orders.map((o) => o.id));
  for (const entry of commands) {
    if (!inFlight(entry, view)) continue;
    const command = entry.command;
    switch (command.type) {
      case "PlaceOrder": {
        const p = command.payload;
        if (held.has(p.orderId) || placing.some((o) => o.id === p.orderId)) break;
        const lines = p.lines.map((l) => shownLine(l, catalog));
        placing.push({
          id: p.orderId,
          status: "placed",
          lines,
          totalCents: lines.reduce((sum, l) => sum + l.quantity * l.unitPriceCents, 0),
          readyAt: p.readyAt ?? null,
          note: p.note ?? null,
          placedBy: me,
          placedAt: entry.createdAt,
          rejection: null,
          cancelledBy: null,
          cancelReason: null,
          completedBy: null,
          refunded: false,
          stockReleased: false,
          timeline: [],
          pending: "placing",
        });
        break;
      }
      case "CancelOrder":
        marks.set(command.payload.orderId, "cancelling");
        break;
      case "CompleteOrder":
        marks.set(command.payload.orderId, "collecting");
        break;
    }
  }
  const settledStatus = { cancelling: "cancelled", collecting: "completed", placing: "placed" } as const;
  const mark = (o: OrderView): BoardOrder => {
    const pending = marks.get(o.id) ?? null;
    // Once the view shows the outcome, the mark has nothing more to say.
    return { ...o, pending: pending !== null && o.status !== settledStatus[pending] ? pending : null };
  };
  return [...view.orders.map(mark), ...placing.map((o) => ({ ...mark(o), pending: "placing" as const }))];
}
