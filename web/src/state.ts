// The hook's state and its one reducer: the projection (folded with applyEvent, the
// mirror of the core's fold), the commands this client sent and what became of them,
// and the connection. Pure, so it is unit-tested without a socket.
import type { HouseholdView, List, Older, Page, ServerMessage, WireError } from "./generated";
import { applyEvent, emptyView, isMemberEvent } from "./projection";
import type { MemberEnvelope } from "./projection";
import type { IdentifiedCommand } from "./protocol";

/**
 * - `connecting`: the first connect of this page, not yet open.
 * - `open`: a socket is open (live once welcomed).
 * - `reconnecting`: was live, lost the connection, trying again (at `nextTryAt`).
 * - `unreachable`: UNREACHABLE_AFTER connects in a row failed while the browser is online.
 * - `offline`: the browser says it has no network; tries again when it has.
 * - `closed`: not trying again (replaced by a newer socket).
 */
export type ConnectionStatus = "connecting" | "open" | "reconnecting" | "unreachable" | "closed" | "offline";

/** Failed connects in a row (browser online) after which the server counts as unreachable. */
export const UNREACHABLE_AFTER = 3;

export type CommandState =
  /** Not yet acknowledged: (re)sent on every (re)connect until settled. */
  | { kind: "pending" }
  | { kind: "acknowledged"; duplicate: boolean; seq: number }
  | { kind: "rejected"; code: string; message: string }
  /** Bad input (an `error` naming the command): resending would not help. */
  | { kind: "failed"; code: string; message: string };

export type CommandEntry = {
  command: IdentifiedCommand;
  state: CommandState;
  createdAt: string;
  /** The last transient error (e.g. `unavailable`): still pending, resent on reconnect. */
  lastError?: WireError;
};

/** The last membership change folded in, with the name of who made it as the view had
 * them just before (the board says "Ann removed Bob"). */
export type MemberChange = { event: MemberEnvelope; byName: string | null };

export type HouseholdState = {
  /** Each list's most recent items (the welcome's), and older pages loaded since. */
  view: HouseholdView;
  /** How many items of each list came before the first one in `view` (not loaded). */
  older: Older;
  commands: CommandEntry[];
  status: ConnectionStatus;
  /** A gap was seen: a `sync` from this seq is due (null: none needed). */
  resyncFrom: number | null;
  /** The last `error` not tied to one of our commands. */
  lastError: WireError | null;
  /** Whether a welcome arrived on the current connection. */
  welcomed: boolean;
  /** Whether any connection of this page was welcomed (a drop after it is a reconnect). */
  everWelcomed: boolean;
  /** Connects that failed in a row since the last open socket. */
  failures: number;
  /** When the socket tries next (epoch ms), while not connected; null: not scheduled. */
  nextTryAt: number | null;
  /** The last membership change that came as an event (null: none on this page). */
  memberChange: MemberChange | null;
};

export type Action =
  | { type: "message"; message: ServerMessage }
  | { type: "status"; status: ConnectionStatus }
  /** The socket closed or failed to open; `nextTryAt`: when it tries again (null: never). */
  | { type: "disconnected"; offline: boolean; nextTryAt: number | null }
  | { type: "queue"; command: IdentifiedCommand; at: string }
  | { type: "syncSent"; since: number }
  | { type: "dismissError" }
  /** A page of a list's older items read with `before`: the items right before ours. */
  | { type: "older"; list: List; before: number; page: Page }
  | { type: "forget"; id: string };

/** Settled commands kept for display; pending ones are always kept. */
export const SETTLED_KEPT = 20;

/** Error codes after which the same command id may be resent later. */
const TRANSIENT = new Set(["unavailable", "contention", "rate_limited"]);

/** Nothing older than the view: every list whole. */
export const NONE_OLDER: Older = { olderOrders: 0, olderChores: 0 };

/** The count in `Older` of `list`'s items before the view's: `olderOrders`, `olderChores`. */
export const olderKey = (list: List) => `older${list.charAt(0).toUpperCase()}${list.slice(1)}` as keyof Older;

export function initialState(view: HouseholdView = emptyView(), commands: CommandEntry[] = [], older: Older = NONE_OLDER): HouseholdState {
  return {
    view,
    older,
    commands,
    status: "connecting",
    resyncFrom: null,
    lastError: null,
    welcomed: false,
    everWelcomed: false,
    failures: 0,
    nextTryAt: null,
    memberChange: null,
  };
}

/**
 * Puts a page of a list's older items before ours. The page is at `page.seq`, at or
 * after our view's (the server reads it after the events we have); the fold skips the
 * events (view.seq, page.seq] of its items when they arrive, since they are already in
 * them. A page that does not continue our items (a welcome came meanwhile), is behind our
 * view or is not of that list is dropped: loading it again reads a fresh one.
 */
function withOlder(state: HouseholdState, list: List, before: number, page: Page): HouseholdState {
  const key = olderKey(list);
  const fields = page as unknown as Record<string, unknown>;
  const items = fields[list];
  const count = fields[key];
  if (!Array.isArray(items) || typeof count !== "number") return state;
  const continues = before === state.older[key] && count + items.length === before;
  if (!continues || page.seq < state.view.seq) return state;
  const current = state.view[list] as { id: string }[];
  const ours = new Set(current.map((item) => item.id));
  const older = (items as { id: string }[]).filter((item) => !ours.has(item.id));
  return { ...state, older: { ...state.older, [key]: count }, view: { ...state.view, [list]: [...older, ...current] } };
}

function settle(state: HouseholdState, id: string, next: (entry: CommandEntry) => CommandEntry): HouseholdState {
  const index = state.commands.findIndex((c) => c.command.id === id);
  const entry = state.commands[index];
  if (entry === undefined) return state;
  const commands = state.commands.slice();
  commands[index] = next(entry);
  return { ...state, commands: prune(commands) };
}

function prune(commands: CommandEntry[]): CommandEntry[] {
  const settled = commands.filter((c) => c.state.kind !== "pending");
  if (settled.length <= SETTLED_KEPT) return commands;
  const drop = new Set(settled.slice(0, settled.length - SETTLED_KEPT).map((c) => c.command.id));
  return commands.filter((c) => !drop.has(c.command.id));
}

export function reducer(state: HouseholdState, action: Action): HouseholdState {
  switch (action.type) {
    case "status": {
      const open = action.status === "open";
      // Trying again after having been live is a reconnect.
      const status = action.status === "connecting" && state.everWelcomed ? "reconnecting" : action.status;
      return {
        ...state,
        status,
        failures: open ? 0 : state.failures,
        nextTryAt: null,
        // A new connection starts unwelcomed; a pending resync is moot after a reconnect
        // (the query carries `since`).
        welcomed: open ? state.welcomed : false,
        resyncFrom: open ? state.resyncFrom : null,
      };
    }
    case "disconnected": {
      const base = { ...state, welcomed: false, resyncFrom: null, nextTryAt: action.nextTryAt };
      if (action.offline) return { ...base, status: "offline" };
      if (action.nextTryAt === null) return { ...base, status: "closed" };
      const failures = state.failures + 1;
      const status = failures >= UNREACHABLE_AFTER ? "unreachable" : state.everWelcomed ? "reconnecting" : "connecting";
      return { ...base, failures, status };
    }
    case "queue":
      if (state.commands.some((c) => c.command.id === action.command.id)) return state;
      return {
        ...state,
        commands: [...state.commands, { command: action.command, state: { kind: "pending" }, createdAt: action.at }],
      };
    case "syncSent":
      return state.resyncFrom === action.since ? { ...state, resyncFrom: null } : state;
    case "dismissError":
      return { ...state, lastError: null };
    case "older":
      return withOlder(state, action.list, action.before, action.page);
    case "forget":
      return { ...state, commands: state.commands.filter((c) => c.command.id !== action.id || c.state.kind === "pending") };
    case "message":
      return onMessage(state, action.message);
  }
}

function onMessage(state: HouseholdState, message: ServerMessage): HouseholdState {
  if ("welcome" in message) {
    // The welcome's state is the projection at welcome.seq of each list's most recent
    // items: the server's truth (older pages loaded before are dropped). Events replayed
    // after it (at or below its seq) fold to nothing.
    const { room: _room, connection: _connection, seq: _seq, state: view, ...older } = message.welcome;
    return {
      ...state,
      view,
      older: { ...NONE_OLDER, ...older },
      welcomed: true,
      everWelcomed: true,
      status: "open",
      failures: 0,
      nextTryAt: null,
      resyncFrom: null,
    };
  }
  if ("event" in message) {
    const event = message.event;
    const result = applyEvent(state.view, event);
    if (result.kind === "applied" && isMemberEvent(event)) {
      const by = "by" in event.payload ? event.payload.by : null;
      const byName = (state.view.members ?? []).find((m) => m.id === by)?.name ?? null;
      return { ...state, view: result.view, memberChange: { event, byName } };
    }
    if (result.kind === "applied") return { ...state, view: result.view };
    if (result.kind === "gap") {
      // Missed events: ask for everything after what we have (once per position).
      return state.resyncFrom === result.at ? state : { ...state, resyncFrom: result.at };
    }
    return state;
  }
  if ("ack" in message) {
    const { id, status, seq } = message.ack;
    return settle(state, id, (e) => ({ ...e, state: { kind: "acknowledged", duplicate: status === "duplicate", seq } }));
  }
  if ("rejected" in message) {
    const { id, code, message: text } = message.rejected;
    return settle(state, id, (e) => ({ ...e, state: { kind: "rejected", code, message: text } }));
  }
  if ("renewed" in message) return state;
  const error = message.error;
  const id = error.id;
  if (id !== undefined && state.commands.some((c) => c.command.id === id)) {
    if (TRANSIENT.has(error.code)) return settle(state, id, (e) => ({ ...e, lastError: error }));
    return settle(state, id, (e) => ({ ...e, state: { kind: "failed", code: error.code, message: error.message } }));
  }
  return { ...state, lastError: error };
}

export const pendingCommands = (state: HouseholdState): IdentifiedCommand[] =>
  state.commands.filter((c) => c.state.kind === "pending").map((c) => c.command);
