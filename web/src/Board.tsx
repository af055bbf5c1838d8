import { useEffect, useMemo, useState } from "react";
import type { FormEvent } from "react";
import { navigate } from "./App";
import { createInvite, fetchCatalog, fetchMembers, inviteLink } from "./api";
import { STATUS_LABEL, STEPS, money, time } from "./format";
import type { CatalogItem, Member, Membership, OrderLine, OrderView } from "./generated";
import { Members } from "./Members";
import { depart, useSession } from "./session";
import type { CommandEntry } from "./state";
import { useHousehold } from "./useHousehold";

const STATUS_TEXT = {
  open: "Live",
  connecting: "Connecting…",
  closed: "Disconnected",
  offline: "Offline: changes will be sent when you are back online",
  unauthorized: "Not allowed into this household (token refused)",
} as const;

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
  const names = useMemo(() => new Map(members.map((m) => [m.id, m.name])), [members]);
  const unknownPlacer = hh.view.orders.some((o) => !names.has(o.placedBy));

  useEffect(() => {
    if (!unknownPlacer && members.length > 0) return;
    fetchMembers(household.id, token).then(setMembers, () => undefined);
    // Refetch when someone new places an order.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [household.id, token, unknownPlacer, hh.status]);

  const who = (id: string) => (id === member.id ? "you" : (names.get(id) ?? "a member"));
  const orders = [...hh.view.orders].reverse();
  const problems = hh.commands.filter((c) => c.state.kind === "rejected" || c.state.kind === "failed");
  const pending = hh.commands.filter((c) => c.state.kind === "pending");

  return (
    <main className="page">
      <header className="top">
        <div>
          <a href="/" className="muted" onClick={(e) => (e.preventDefault(), navigate("/"))}>
            ← Households
          </a>
          <h1 data-testid="household-name">{household.name}</h1>
          <p className="muted">You are {member.name}</p>
        </div>
        <span className={`conn conn-${hh.status}`} data-testid="connection" data-status={hh.status}>
          {STATUS_TEXT[hh.status]}
        </span>
      </header>

      {hh.lastError && (
        <div className="error banner" role="alert" data-testid="error">
          {hh.lastError.code}: {hh.lastError.message} <button onClick={hh.dismissError}>Dismiss</button>
        </div>
      )}
      {problems.map((c) => (
        <Problem key={c.command.id} entry={c} />
      ))}
      {pending.length > 0 && (
        <p className="muted" data-testid="pending">
          {pending.length} change{pending.length > 1 ? "s" : ""} waiting for the server…
        </p>
      )}

      {member.role === "owner" && <Invite householdId={household.id} token={token} />}
      <Members householdId={household.id} me={member.id} token={token} onLeft={() => depart(membership, "left")} onMembers={setMembers} />
      <NewOrder onPlace={hh.placeOrder} disabled={hh.status === "unauthorized"} />

      <section>
        <h2>Orders</h2>
        <ul className="plain orders" data-testid="board">
          {orders.length === 0 && <li className="muted">No orders yet.</li>}
          {orders.map((o) => (
            <Order
              key={o.id}
              order={o}
              placedBy={who(o.placedBy)}
              onCancel={() => hh.cancelOrder(o.id)}
              onCollect={() => hh.completeOrder(o.id)}
              pending={pending.some((c) => c.command.payload.orderId === o.id)}
            />
          ))}
        </ul>
        {hh.olderOrders > 0 && <OlderOrders count={hh.olderOrders} load={hh.loadOlder} />}
      </section>
    </main>
  );
}

// The board starts with the household's most recent orders (the welcome's); older ones
// are read a page at a time on demand.
function OlderOrders({ count, load }: { count: number; load: () => Promise<void> }) {
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
      <button className="secondary" onClick={click} disabled={loading} data-testid="older-orders">
        {loading ? "Loading…" : `Show older orders (${count} more)`}
      </button>
    </p>
  );
}

function Problem({ entry }: { entry: CommandEntry }) {
  if (entry.state.kind !== "rejected" && entry.state.kind !== "failed") return null;
  return (
    <div className="error banner" role="alert" data-testid="rejected">
      {entry.command.type} refused ({entry.state.code}): {entry.state.message}
    </div>
  );
}

function Order(props: { order: OrderView; placedBy: string; pending: boolean; onCancel: () => void; onCollect: () => void }) {
  const { order } = props;
  const reached = new Set(order.timeline.map((t) => t.status));
  reached.add("placed");
  const at = new Map(order.timeline.map((t) => [t.status, t.at]));
  at.set("placed", order.placedAt);
  const ended = order.status === "rejected" || order.status === "cancelled";
  const cancellable = !["ready", "completed", "rejected", "cancelled"].includes(order.status);
  return (
    <li className={`card order status-${order.status}`} data-testid="order" data-status={order.status} data-order-id={order.id}>
      <div className="row">
        <strong data-testid="order-status">{STATUS_LABEL[order.status]}</strong>
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
        Placed by {props.placedBy} at {time(order.placedAt)}
        {order.readyAt && <> · ready at {time(order.readyAt)}</>}
      </p>
      <ol className="steps">
        {STEPS.filter((s) => s !== "completed" || reached.has("completed")).map((s) => (
          <li key={s} className={reached.has(s) ? "done" : ""}>
            {STATUS_LABEL[s]}
            {at.get(s) && <span className="muted small"> {time(at.get(s) ?? null)}</span>}
          </li>
        ))}
        {ended && (
          <li className="done end">
            {STATUS_LABEL[order.status]}
            {order.rejection && ` (${order.rejection.code === "outOfStock" ? `out of stock: ${order.rejection.sku}` : order.rejection.message})`}
            <span className="muted small"> {time(at.get(order.status) ?? null)}</span>
          </li>
        )}
      </ol>
      {order.refunded && <p className="muted small">Refunded</p>}
      <div className="row">
        {cancellable && (
          <button className="secondary" onClick={props.onCancel} disabled={props.pending}>
            Cancel order
          </button>
        )}
        {order.status === "ready" && (
          <button onClick={props.onCollect} disabled={props.pending}>
            Mark collected
          </button>
        )}
        {props.pending && <span className="muted small">sending…</span>}
      </div>
    </li>
  );
}

const READY_IN: { label: string; minutes: number | null }[] = [
  { label: "As soon as possible", minutes: null },
  { label: "In 15 minutes", minutes: 15 },
  { label: "In 30 minutes", minutes: 30 },
  { label: "In 1 hour", minutes: 60 },
  { label: "In 2 hours", minutes: 120 },
  { label: "Tomorrow, same time", minutes: 24 * 60 },
];

function NewOrder({ onPlace, disabled }: { onPlace: (o: { lines: OrderLine[]; readyAt?: string; note?: string }) => string; disabled: boolean }) {
  const [catalog, setCatalog] = useState<CatalogItem[] | null>(null);
  const [catalogError, setCatalogError] = useState<string | null>(null);
  const [qty, setQty] = useState<Record<string, number>>({});
  const [readyIn, setReadyIn] = useState(0);
  const [note, setNote] = useState("");

  useEffect(() => {
    fetchCatalog().then(setCatalog, (e: unknown) => setCatalogError(e instanceof Error ? e.message : String(e)));
  }, []);

  const lines: OrderLine[] = (catalog ?? [])
    .filter((i) => (qty[i.sku] ?? 0) > 0)
    .map((i) => ({ sku: i.sku, name: i.name, quantity: qty[i.sku] ?? 0, unitPriceCents: i.unitPriceCents }));
  const total = lines.reduce((sum, l) => sum + l.quantity * l.unitPriceCents, 0);

  function submit(e: FormEvent) {
    e.preventDefault();
    if (lines.length === 0) return;
    const minutes = READY_IN[readyIn]?.minutes ?? null;
    const trimmed = note.trim();
    onPlace({
      lines,
      ...(minutes !== null ? { readyAt: new Date(Date.now() + minutes * 60_000).toISOString() } : {}),
      ...(trimmed ? { note: trimmed } : {}),
    });
    setQty({});
    setNote("");
  }

  const step = (sku: string, by: number) =>
    setQty((q) => ({ ...q, [sku]: Math.max(0, Math.min(99, (q[sku] ?? 0) + by)) }));

  return (
    <details className="card" open>
      <summary>
        <h2>New order</h2>
      </summary>
      {catalogError && <p className="error">Catalog unavailable: {catalogError}</p>}
      {!catalog && !catalogError && <p className="muted">Loading the catalog…</p>}
      <form onSubmit={submit} className="stack" data-testid="new-order">
        <ul className="plain catalog">
          {(catalog ?? []).map((i) => (
            <li key={i.sku} className="row" data-testid="catalog-item" data-sku={i.sku}>
              <span>
                {i.name} <span className="muted small">{money(i.unitPriceCents)}</span>
              </span>
              <span className="qty">
                <button type="button" aria-label={`fewer ${i.name}`} onClick={() => step(i.sku, -1)}>
                  −
                </button>
                <output aria-label={`${i.name} quantity`}>{qty[i.sku] ?? 0}</output>
                <button type="button" aria-label={`more ${i.name}`} onClick={() => step(i.sku, 1)}>
                  +
                </button>
              </span>
            </li>
          ))}
        </ul>
        <label>
          Ready
          <select name="readyIn" value={readyIn} onChange={(e) => setReadyIn(Number(e.target.value))}>
            {READY_IN.map((r, i) => (
              <option key={r.label} value={i}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Note (optional)
          <input name="note" value={note} onChange={(e) => setNote(e.target.value)} maxLength={500} placeholder="e.g. ripe ones please" />
        </label>
        <button type="submit" disabled={disabled || lines.length === 0}>
          Place order{total > 0 ? ` (${money(total)})` : ""}
        </button>
      </form>
    </details>
  );
}

function Invite({ householdId, token }: { householdId: string; token: string }) {
  const [link, setLink] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  async function make() {
    setError(null);
    setCopied(false);
    try {
      setLink(inviteLink(await createInvite(householdId, token)));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
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
          <input readOnly value={link} data-testid="invite-link" onFocus={(e) => e.target.select()} />
          <button className="secondary" onClick={copy}>
            {copied ? "Copied" : "Copy"}
          </button>
        </div>
      )}
      {error && <p className="error">{error}</p>}
    </section>
  );
}
