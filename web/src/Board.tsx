import { useEffect, useMemo, useRef, useState } from "react";
import type { FormEvent } from "react";
import { navigate } from "./App";
import { announcements } from "./announce";
import { createInvite, fetchCatalog, fetchHousehold, fetchMembers, inviteLink } from "./api";
import { STATUS_LABEL, clock, fromZonedInput, money, timelineSteps, toZonedInput, when } from "./format";
import type { CatalogItem, Household as HouseholdInfo, List, Member, Membership, RejectionReason, RequestedLine } from "./generated";
import { READY_AT_MAX_DAYS, REFUSALS, actorName, errorSentence, linesText, membershipLine, refusedSentence, sentence } from "./messages";
import type { NameOf } from "./messages";
import { boardOrders } from "./optimistic";
import type { BoardOrder, Pending } from "./optimistic";
import { Members } from "./Members";
import { updateHousehold } from "./memberships";
import { TimeZoneSetting } from "./TimeZone";
import { DEFAULT_TIME_ZONE, HouseholdZone, useZone } from "./zone";
import { depart, useSession } from "./session";
import type { CommandEntry } from "./state";
import { Chores } from "./Chores";
import { useHousehold } from "./useHousehold";
import type { Household } from "./useHousehold";

export function Board({ membership }: { membership: Membership }) {
  const { household, member } = membership;
  const session = useSession(membership);
  const token = session.token;
  const hh = useHousehold(household.id, token, { freshToken: session.fresh });
  // Removed, left, or signed out: say why, back to the households.
  const departed = hh.departed ?? session.ended;
  useEffect(() => {
    if (!departed) return;
    depart(membership, departed);
    navigate("/");
  }, [departed, membership]);
  const [members, setMembers] = useState<Member[]>([]);
  // The household as the server has it now (its time zone may have been changed by an
  // owner): read at each (re)connect, kept with the membership for offline use.
  const [info, setInfo] = useState<HouseholdInfo>(household);
  const learn = (h: HouseholdInfo) => {
    setInfo(h);
    updateHousehold(h);
  };
  useEffect(() => {
    if (!hh.welcomed) return;
    fetchHousehold(household.id, token).then(learn, () => undefined);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [household.id, token, hh.welcomed]);
  // A membership kept from before households had zones has none until the server says.
  const zone = info.timeZone ?? DEFAULT_TIME_ZONE;
  // Names: of members as last listed (departed ones too, who placed older orders), and
  // of the current ones as the log has them (live: a member who just joined).
  const names = useMemo(
    () => new Map([...members.map((m) => [m.id, m.name] as const), ...(hh.view.members ?? []).map((m) => [m.id, m.name] as const)]),
    [members, hh.view.members],
  );
  const unknownPlacer =
    hh.view.orders.some((o) => !names.has(o.placedBy)) || (hh.view.chores ?? []).some((c) => !names.has(c.assignee));

  useEffect(() => {
    if (!unknownPlacer && members.length > 0) return;
    fetchMembers(household.id, token).then(setMembers, () => undefined);
    // Refetch when someone new places an order.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [household.id, token, unknownPlacer, hh.status]);

  const who = (id: string) => (id === member.id ? "you" : (names.get(id) ?? "a member"));
  const whoName = (id: string) => names.get(id) ?? "A member";

  // The server's catalog: names, prices and what is available. Read again after a
  // refusal that says it changed (a price, the stock, an item gone).
  const [catalog, setCatalog] = useState<CatalogItem[] | null>(null);
  const [catalogError, setCatalogError] = useState<string | null>(null);
  const reloadCatalog = () =>
    fetchCatalog().then(
      (items) => {
        setCatalog(items);
        setCatalogError(null);
      },
      (e: unknown) => setCatalogError(errorSentence(e)),
    );
  const bySku = useMemo(() => new Map((catalog ?? []).map((i) => [i.sku, i] as const)), [catalog]);
  const nameOf: NameOf = (sku) => bySku.get(sku)?.name ?? null;

  const orders = boardOrders(hh, member.id, bySku).reverse();
  const problems = hh.commands.filter((c) => c.state.kind === "rejected" || c.state.kind === "failed");
  const catalogRefusals = problems.filter((c) => c.state.kind === "rejected" && CATALOG_CODES.includes(c.state.code)).length;
  useEffect(() => {
    void reloadCatalog();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [catalogRefusals]);
  const pending = hh.commands.filter((c) => c.state.kind === "pending");
  const describeOrder = (id: string) => {
    const o = hh.view.orders.find((x) => x.id === id);
    return o ? linesText(o.lines) : null;
  };

  // Remote changes, said to screen readers (the server's view only: own effects are
  // already on screen where the member acted).
  const [announcement, setAnnouncement] = useState("");
  const seen = useRef(hh.view.orders);
  useEffect(() => {
    const said = announcements(seen.current, hh.view.orders, member.id, whoName);
    seen.current = hh.view.orders;
    if (said.length > 0) setAnnouncement(said.slice(-3).join(" "));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [hh.view.orders, member.id]);

  return (
    <HouseholdZone.Provider value={zone}>
      <ConnectionBar hh={hh} />
      <main className="page">
        <header className="top">
          <div>
            <a href="/" onClick={(e) => (e.preventDefault(), navigate("/"))}>
              ← Households
            </a>
            <h1 data-testid="household-name">{info.name}</h1>
            <p className="muted">
              You are {member.name} · times are in <span data-testid="household-zone">{zone}</span>
            </p>
          </div>
        </header>
        <div className="visually-hidden" aria-live="polite" data-testid="announcer">
          {announcement}
        </div>

        {hh.lastError && (
          <div className="error banner" role="alert" data-testid="error" data-code={hh.lastError.code}>
            {sentence(hh.lastError.code)} <button onClick={hh.dismissError}>Dismiss</button>
          </div>
        )}
        {problems.map((c) => (
          <Problem key={c.command.id} entry={c} describeOrder={describeOrder} nameOf={nameOf} onDismiss={() => hh.forget(c.command.id)} />
        ))}
        {pending.length > 0 && (
          <p className="muted" data-testid="pending">
            {pending.length} change{pending.length > 1 ? "s" : ""} not yet confirmed by the server
            {hh.status === "open" ? "…" : ": kept on this device and sent when the connection is back."}
          </p>
        )}

        {hh.memberChange && (
          <p className="muted" role="status" data-testid="member-notice" data-type={hh.memberChange.event.type}>
            {membershipLine(hh.memberChange, member.id)}
          </p>
        )}
        {member.role === "owner" && <Invite householdId={household.id} token={token} />}
        {member.role === "owner" && <TimeZoneSetting householdId={household.id} token={token} zone={zone} onChanged={learn} />}
        <Members
          householdId={household.id}
          me={member.id}
          token={token}
          live={hh.welcomed ? (hh.view.members ?? []) : null}
          onLeft={() => depart(membership, "left")}
          onMembers={setMembers}
        />
        <NewOrder
          catalog={catalog}
          catalogError={catalogError}
          onPlace={(order) => {
            const id = hh.placeOrder(order);
            // What is available changes as orders are placed: read it again.
            void reloadCatalog();
            return id;
          }}
          disabled={hh.status === "unauthorized"}
        />

        <section aria-labelledby="orders-heading">
          <h2 id="orders-heading">Orders</h2>
          <ul className="plain orders" data-testid="board">
            {orders.length === 0 && <li className="muted">No orders yet.</li>}
            {orders.map((o) => (
              <Order
                key={o.id}
                order={o}
                placedBy={who(o.placedBy)}
                cancelledBy={o.cancelledBy ? actorName(o.cancelledBy, member.id, (id) => names.get(id) ?? "a member") : null}
                completedBy={o.completedBy ? who(o.completedBy) : null}
                mayAct={o.placedBy === member.id || member.role === "owner"}
                onCancel={(reason) => hh.cancelOrder(o.id, reason)}
                onCollect={() => hh.completeOrder(o.id)}
              />
            ))}
          </ul>
          {hh.older.olderOrders > 0 && <Older what="orders" count={hh.older.olderOrders} load={() => hh.loadOlder("orders")} />}
        </section>

        <Chores
          chores={hh.view.chores ?? []}
          me={member.id}
          members={members}
          refreshMembers={() => fetchMembers(household.id, token).then(setMembers, () => undefined)}
          send={hh.send}
          disabled={hh.status === "unauthorized"}
          older={hh.older.olderChores > 0 && <Older what="chores" count={hh.older.olderChores} load={() => hh.loadOlder("chores")} />}
        />
      </main>
    </HouseholdZone.Provider>
  );
}

/** Re-renders every `everyMs` while `active` (a countdown), and gives the time. */
function useNow(active: boolean, everyMs = 1_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [active, everyMs]);
  return now;
}

/** The connection, always in view (sticky), one line on a phone. */
function ConnectionBar({ hh }: { hh: Household }) {
  const waiting = hh.nextTryAt !== null && (hh.status === "reconnecting" || hh.status === "unreachable" || hh.status === "connecting");
  const now = useNow(waiting);
  const seconds = hh.nextTryAt === null ? 0 : Math.max(0, Math.ceil((hh.nextTryAt - now) / 1_000));
  const next = seconds > 0 ? `next try in ${seconds} s` : "trying now…";
  const live = hh.status === "open" && hh.welcomed;
  const text = live
    ? "Live"
    : {
        open: "Connecting…",
        connecting: hh.nextTryAt !== null && seconds > 0 ? `Connecting · ${next}` : "Connecting…",
        reconnecting: `Reconnecting · ${next}`,
        unreachable: `Server unreachable · ${next}`,
        offline: "Offline · changes are kept and sent later",
        closed: "Disconnected · open in another tab",
        unauthorized: "Not allowed into this household",
      }[hh.status];
  const canRetry = hh.status === "reconnecting" || hh.status === "unreachable" || hh.status === "closed";
  const kind = live ? "live" : hh.status;
  return (
    <div className={`connbar conn-${kind}`} data-testid="connection" data-status={hh.status} data-live={live}>
      <span role="status" className="conn-text">
        <span className="dot" aria-hidden="true" />
        {text}
      </span>
      {canRetry && (
        <button className="secondary small-button" onClick={hh.retryNow} data-testid="retry-now">
          Try now
        </button>
      )}
    </div>
  );
}

// The board starts with each list's most recent items (the welcome's); older ones are
// read a page at a time on demand.
function Older({ what, count, load }: { what: List; count: number; load: () => Promise<void> }) {
  const [loading, setLoading] = useState(false);
  async function click() {
    setLoading(true);
    try {
      await load();
    } finally {
      setLoading(false);
    }
  }
  return (
    <p className="row">
      <button className="secondary" onClick={click} disabled={loading} data-testid={`older-${what}`}>
        {loading ? "Loading…" : `Show older ${what} (${count} more)`}
      </button>
    </p>
  );
}

/** Refusals that mean the catalog this device shows is out of date. */
const CATALOG_CODES: readonly string[] = ["price_changed", "not_enough_stock", "unknown_sku"];

function Problem({ entry, describeOrder, nameOf, onDismiss }: { entry: CommandEntry; describeOrder: (id: string) => string | null; nameOf: NameOf; onDismiss: () => void }) {
  if (entry.state.kind !== "rejected" && entry.state.kind !== "failed") return null;
  return (
    <div className="error banner" role="alert" data-testid="rejected" data-code={entry.state.code}>
      {refusedSentence(entry.command, entry.state.code, describeOrder, nameOf)}{" "}
      <button onClick={onDismiss}>Dismiss</button>
    </div>
  );
}

/** How a ready-at reads: expected while the order is on its way, as a fact once ready. */
/** Why an order was rejected, in a few words. */
function rejectionWords(order: BoardOrder, reason: RejectionReason): string {
  switch (reason.code) {
    case "outOfStock":
      return `out of stock: ${itemName(order, reason.sku)}`;
    case "stockLost":
      return `the shop lost its stock of ${itemName(order, reason.sku)}`;
    case "paymentDeclined":
      return reason.message;
  }
}

function readyWords(order: BoardOrder): string {
  if (order.status === "ready" || order.status === "completed") return "ready";
  if (order.status === "cancelled" || order.status === "rejected") return "was due";
  return "expected ready";
}

const PENDING_TEXT: Record<Pending, string> = {
  placing: "Not yet confirmed",
  cancelling: "Cancelling…",
  collecting: "Marking collected…",
};

/** The longest reason a cancellation may give: the core's `limits::MAX_REASON_CHARS`. */
const MAX_REASON_CHARS = 200;

function Order(props: {
  order: BoardOrder;
  placedBy: string;
  cancelledBy: string | null;
  completedBy: string | null;
  mayAct: boolean;
  onCancel: (reason?: string) => void;
  onCollect: () => void;
}) {
  const { order, mayAct } = props;
  const zone = useZone();
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState("");
  const confirmRef = useRef<HTMLButtonElement>(null);
  const cancelRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (confirming) confirmRef.current?.focus();
  }, [confirming]);
  const reached = new Set(order.timeline.map((t) => t.status));
  reached.add("placed");
  const at = new Map(order.timeline.map((t) => [t.status, t.at]));
  at.set("placed", order.placedAt);
  const busy = order.pending !== null;
  // Members cancel and collect their own orders, owners any (the core's rule).
  const cancellable = mayAct && !busy && !["ready", "completed", "rejected", "cancelled"].includes(order.status);
  const what = linesText(order.lines);
  const headingId = `order-${order.id}`;
  return (
    <li
      className={`card order status-${order.status}${busy ? " pending" : ""}`}
      data-testid="order"
      data-status={order.status}
      data-pending={order.pending ?? undefined}
      data-order-id={order.id}
      aria-labelledby={headingId}
    >
      <div className="row">
        <strong id={headingId} data-testid="order-status">
          {STATUS_LABEL[order.status]}
          <span className="visually-hidden"> order of {what}</span>
        </strong>
        {order.pending && (
          <span className="badge" data-testid={order.pending === "placing" ? "unconfirmed" : "order-pending"}>
            {PENDING_TEXT[order.pending]}
          </span>
        )}
        <span>{money(order.totalCents)}</span>
      </div>
      <ul className="plain lines">
        {order.lines.map((l) => (
          <li key={l.sku}>
            {l.quantity} × {l.name} <span className="muted">{money(l.unitPriceCents * l.quantity)}</span>
          </li>
        ))}
      </ul>
      {order.note && <p className="note" data-testid="order-note">“{order.note}”</p>}
      <p className="muted small">
        Placed by {props.placedBy} {when(order.placedAt, zone)}
        {order.readyAt ? (
          <>
            {" "}
            · <span data-testid="ready-at">{readyWords(order)} {when(order.readyAt, zone)}</span>
          </>
        ) : (
          <> · ready as soon as possible</>
        )}
      </p>
      {order.pending !== "placing" && (
        <ol className="steps" aria-label="Progress">
          {timelineSteps(order.status, reached).map((s) => (
            <li key={s.status} className={s.end ? "done end" : s.done ? "done" : "todo"}>
              <span className="visually-hidden">{s.done ? "done: " : "to come: "}</span>
              {STATUS_LABEL[s.status]}
              {s.end && order.rejection && ` (${rejectionWords(order, order.rejection)})`}
              {at.get(s.status) && <span className="small"> {clock(at.get(s.status) ?? null, zone)}</span>}
            </li>
          ))}
        </ol>
      )}
      {order.status === "cancelled" && props.cancelledBy && (
        <p className="small" data-testid="cancelled-by">
          Cancelled by {props.cancelledBy}
          {order.cancelReason && (
            <>
              : <q data-testid="cancel-reason">{order.cancelReason}</q>
            </>
          )}
        </p>
      )}
      {order.status === "completed" && props.completedBy && (
        <p className="small" data-testid="completed-by">
          Collected by {props.completedBy}
        </p>
      )}
      {order.refunded && (
        <p className="muted small" data-testid="refunded">
          {order.timeline.some((t) => t.event === "RefundedByProvider") ? "Refunded by the payment provider" : "Refunded"}
        </p>
      )}
      {confirming ? (
        <div className="row confirm" role="group" aria-label={`Cancel the order of ${what}?`}>
          <span>Cancel this order?</span>
          <input
            aria-label="Why (optional)"
            placeholder="Why (optional)"
            data-testid="cancel-reason-input"
            value={reason}
            maxLength={MAX_REASON_CHARS}
            onChange={(e) => setReason(e.target.value)}
          />
          <button
            ref={confirmRef}
            className="danger"
            onClick={() => {
              setConfirming(false);
              const why = reason.trim();
              setReason("");
              props.onCancel(why === "" ? undefined : why);
            }}
          >
            Yes, cancel it
          </button>
          <button
            className="secondary"
            onClick={() => {
              setConfirming(false);
              cancelRef.current?.focus();
            }}
          >
            Keep it
          </button>
        </div>
      ) : (
        <div className="row">
          {cancellable && (
            <button ref={cancelRef} className="secondary" onClick={() => setConfirming(true)}>
              Cancel order<span className="visually-hidden"> of {what}</span>
            </button>
          )}
          {mayAct && order.status === "ready" && !busy && (
            <button onClick={props.onCollect}>
              Mark collected<span className="visually-hidden"> the order of {what}</span>
            </button>
          )}
        </div>
      )}
    </li>
  );
}

/** The name an order's line for `sku` has (what the order recorded), else the sku. */
function itemName(order: BoardOrder, sku: string): string {
  return order.lines.find((l) => l.sku === sku)?.name ?? sku;
}

/** The most a member may ask for of `item`: what is available, and at most 99 a line. */
const mostOf = (item: CatalogItem) => Math.max(0, Math.min(99, item.available));

function NewOrder(props: {
  catalog: CatalogItem[] | null;
  catalogError: string | null;
  onPlace: (o: { lines: RequestedLine[]; readyAt?: string; note?: string }) => string;
  disabled: boolean;
}) {
  const { catalog, catalogError, onPlace, disabled } = props;
  const [qty, setQty] = useState<Record<string, number>>({});
  const [readyAt, setReadyAt] = useState<string | null>(null);
  const [note, setNote] = useState("");
  const [placed, setPlaced] = useState<string | null>(null);
  const zone = useZone();

  const chosen = (catalog ?? []).filter((i) => (qty[i.sku] ?? 0) > 0);
  // Skus, quantities and the prices shown: the server names and prices the lines from
  // its catalog, and refuses a price that is no longer the one shown.
  const lines: RequestedLine[] = chosen.map((i) => ({ sku: i.sku, quantity: qty[i.sku] ?? 0, unitPriceCents: i.unitPriceCents }));
  const total = chosen.reduce((sum, i) => sum + (qty[i.sku] ?? 0) * i.unitPriceCents, 0);
  // More than is available (the catalog was read again since it was chosen): not sent.
  const tooMany = chosen.filter((i) => (qty[i.sku] ?? 0) > i.available);
  const timeProblem = readyAt === null ? null : readyAtProblem(readyAt, zone);

  function submit(e: FormEvent) {
    e.preventDefault();
    if (lines.length === 0 || tooMany.length > 0 || timeProblem) return;
    const at = readyAt === null ? null : fromZonedInput(readyAt, zone);
    const trimmed = note.trim();
    onPlace({
      lines,
      ...(at ? { readyAt: at.toISOString() } : {}),
      ...(trimmed ? { note: trimmed } : {}),
    });
    setPlaced(`Order of ${linesText(chosen.map((i) => ({ ...i, quantity: qty[i.sku] ?? 0 })))} placed${at ? `, ready ${when(at.toISOString(), zone)}` : ""}.`);
    // A new order starts afresh: nothing carries over, the ready time included.
    setQty({});
    setNote("");
    setReadyAt(null);
  }

  const step = (item: CatalogItem, by: number) => {
    setPlaced(null);
    setQty((q) => ({ ...q, [item.sku]: Math.max(0, Math.min(mostOf(item), (q[item.sku] ?? 0) + by)) }));
  };

  return (
    <section className="card" aria-labelledby="new-order-heading">
      <h2 id="new-order-heading">New order</h2>
      {catalogError && <p className="error">The catalog could not be loaded. {catalogError}</p>}
      {!catalog && !catalogError && <p className="muted">Loading the catalog…</p>}
      <form onSubmit={submit} className="stack" data-testid="new-order">
        <ul className="plain catalog">
          {(catalog ?? []).map((i) => (
            <li key={i.sku} className="row" data-testid="catalog-item" data-sku={i.sku} data-available={i.available}>
              <span>
                {i.name} <span className="muted small">{money(i.unitPriceCents)}</span>{" "}
                <span className={i.available > 0 ? "muted small" : "error small"} data-testid="available">
                  {i.available > 0 ? `${i.available} available` : "out of stock"}
                </span>
                {(qty[i.sku] ?? 0) > i.available && (
                  <span className="error small" role="alert" data-testid="too-many">
                    {" "}
                    only {i.available} available now
                  </span>
                )}
              </span>
              <span className="qty">
                <button type="button" aria-label={`fewer ${i.name}`} onClick={() => step(i, -1)}>
                  −
                </button>
                <output aria-label={`${i.name} quantity`} aria-live="polite">
                  {qty[i.sku] ?? 0}
                </output>
                <button type="button" aria-label={`more ${i.name}`} onClick={() => step(i, 1)} disabled={(qty[i.sku] ?? 0) >= mostOf(i)}>
                  +
                </button>
              </span>
            </li>
          ))}
        </ul>
        <ReadyAtPicker value={readyAt} onChange={setReadyAt} problem={timeProblem} />
        <label>
          Note (optional)
          <input name="note" value={note} onChange={(e) => setNote(e.target.value)} maxLength={500} placeholder="e.g. ripe ones please" />
        </label>
        {lines.length === 0 && (
          <p className="muted small" id="new-order-hint">
            Choose at least one item with + to place an order.
          </p>
        )}
        <button
          type="submit"
          disabled={disabled || lines.length === 0 || tooMany.length > 0 || timeProblem !== null}
          aria-describedby={lines.length === 0 ? "new-order-hint" : undefined}
        >
          Place order{total > 0 ? ` (${money(total)})` : ""}
        </button>
        <p className="visually-hidden" aria-live="polite">
          {placed}
        </p>
      </form>
    </section>
  );
}

/** Why a picked ready-at time would be refused (null: fine); the server checks it again. */
function readyAtProblem(value: string, zone: string, now = new Date()): string | null {
  const at = fromZonedInput(value, zone);
  if (at === null) return "Pick a date and a time.";
  if (at.getTime() <= now.getTime()) return REFUSALS.ready_at_not_in_future;
  if (at.getTime() > now.getTime() + READY_AT_MAX_DAYS * 86_400_000) return REFUSALS.ready_at_too_far;
  return null;
}

/** "As soon as possible" or a date and time in the household's time zone (whatever the
 * device's), never carried over. */
function ReadyAtPicker({ value, onChange, problem }: { value: string | null; onChange: (v: string | null) => void; problem: string | null }) {
  const zone = useZone();
  const now = new Date();
  const soon = new Date(Math.ceil((now.getTime() + 60 * 60_000) / (15 * 60_000)) * 15 * 60_000);
  const latest = new Date(now.getTime() + READY_AT_MAX_DAYS * 86_400_000);
  const at = value === null ? null : fromZonedInput(value, zone);
  return (
    <fieldset className="ready">
      <legend>Ready</legend>
      <label className="inline">
        <input type="radio" name="when" checked={value === null} onChange={() => onChange(null)} />
        As soon as possible
      </label>
      <label className="inline">
        <input type="radio" name="when" checked={value !== null} onChange={() => onChange(toZonedInput(soon, zone))} />
        At a set time
      </label>
      {value !== null && (
        <label>
          Ready at ({zone})
          <input
            type="datetime-local"
            name="readyAt"
            value={value}
            min={toZonedInput(now, zone)}
            max={toZonedInput(latest, zone)}
            step={60}
            onChange={(e) => onChange(e.target.value)}
            aria-describedby="ready-at-said"
            aria-invalid={problem !== null}
          />
          <span id="ready-at-said" className={problem ? "error small" : "muted small"} data-testid="ready-at-said">
            {problem ?? (at ? `Ready ${when(at.toISOString(), zone)}` : "")}
          </span>
        </label>
      )}
    </fieldset>
  );
}

function Invite({ householdId, token }: { householdId: string; token: string }) {
  const [link, setLink] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  async function make() {
    setError(null);
    setCopied(false);
    // The last link admits one person: once a new one is asked for, it is not offered
    // again (nor copied by mistake) while the new one is on its way.
    setLink(null);
    try {
      setLink(inviteLink(await createInvite(householdId, token)));
    } catch (e) {
      setError(errorSentence(e));
    }
  }
  async function copy() {
    if (!link) return;
    try {
      await navigator.clipboard.writeText(link);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  }
  return (
    <section className="card invite">
      <div className="row">
        <span>Invite someone: each link admits one person, for a day.</span>
        <button className="secondary" onClick={make}>
          New invite link
        </button>
      </div>
      {link && (
        <div className="row">
          <input readOnly value={link} aria-label="Invite link" data-testid="invite-link" onFocus={(e) => e.target.select()} />
          <button className="secondary" onClick={copy}>
            {copied ? "Copied" : "Copy"}
          </button>
        </div>
      )}
      {error && (
        <p className="error" role="alert">
          The invite link could not be made. {error}
        </p>
      )}
    </section>
  );
}
