// What a screen reader hears when the board changes under the member (aria-live): new
// orders from others and the steps people wait for. Pure: the board diffs the server's
// view before and after each change.
import type { MemberId, OrderView } from "./generated";
import { linesText } from "./messages";

const SAID: Partial<Record<OrderView["status"], string>> = {
  confirmed: "is confirmed",
  ready: "is ready",
  completed: "was collected",
  cancelled: "was cancelled",
  rejected: "was rejected",
};

export function announcements(before: readonly OrderView[], after: readonly OrderView[], me: MemberId, who: (id: MemberId) => string): string[] {
  const previous = new Map(before.map((o) => [o.id, o]));
  const out: string[] = [];
  // Orders that are new and placed after the ones known before (not a page of older ones).
  let lastKnown = -1;
  after.forEach((o, i) => {
    if (previous.has(o.id)) lastKnown = i;
  });
  for (const [i, order] of after.entries()) {
    const was = previous.get(order.id);
    if (was === undefined && i < lastKnown) continue;
    const of = linesText(order.lines);
    const whose = order.placedBy === me ? "Your order" : `${who(order.placedBy)}'s order`;
    if (was === undefined) {
      out.push(order.placedBy === me ? `Your order of ${of} was received.` : `${who(order.placedBy)} placed an order of ${of}.`);
      continue;
    }
    const said = SAID[order.status];
    if (was.status !== order.status && said) out.push(`${whose} of ${of} ${said}.`);
  }
  return out;
}
