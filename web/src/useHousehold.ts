// useHousehold(householdId, token): the household's board, live, on partysocket/react.
//
// - The projection is folded from events in seq order by one reducer (state.ts, which
//   uses projection.ts: the mirror of the core's fold); a gap sends {"sync":{"since"}}.
// - Commands get a client-chosen uuid; they stay pending until an ack / rejected / error
//   with their id arrives, and every pending command is (re)sent after each welcome:
//   the id makes a resend idempotent (the server answers `duplicate`).
// - The board, its seq and the commands are cached in localStorage: a reload shows them
//   at once, and the socket resumes with `since=<cached seq>` in its query.
// - Sessions (session.ts): partysocket's `query` is a function, read at every
//   (re)connect, so a reconnect takes a fresh token (`freshToken`); a token renewed while
//   the socket is open is handed to it (`{"renew": {"token"}}`), so it does not close at
//   the old token's expiry. A close that ends the membership here (4003 removed, 4004
//   session ended, 4005 left) stops reconnecting and sets `departed`.
import { usePartySocket } from "partysocket/react";
import { useCallback, useEffect, useMemo, useReducer, useRef } from "react";
import { fetchOlder } from "./api";
import { loadCache, saveCache } from "./cache";
import type { CancelOrder, CommandId, HouseholdView, List, Older, OrderId, PlaceOrder, WireError } from "./generated";
import { commandMessage, parseServerMessage, renewMessage, syncMessage } from "./protocol";
import { DEPARTURE_CLOSE_CODES } from "./session";
import type { Departure } from "./session";
import type { IdentifiedCommand, MemberCommand } from "./protocol";
import { initialState, olderKey, pendingCommands, reducer } from "./state";
import type { CommandEntry, ConnectionStatus, MemberChange } from "./state";

export type HouseholdOptions = {
  /** host:port of `hearth serve`; default: the page's host. */
  host?: string;
  /** Makes ids (tests); default crypto.randomUUID. */
  newId?: () => string;
  /** A token valid now, for each (re)connect; default: the `token` argument. */
  freshToken?: () => Promise<string>;
};

export type Household = {
  view: HouseholdView;
  seq: number;
  /** How many items of each list came before the first one in `view`, not loaded (see `loadOlder`). */
  older: Older;
  /** Reads the page of orders placed before ours (GET /households/{id}/orders). */
  loadOlder: (list: List) => Promise<void>;
  status: ConnectionStatus | "unauthorized";
  /** Whether the current connection was welcomed (the board is live). */
  welcomed: boolean;
  /** When the socket tries to connect next (epoch ms), while it is not connected. */
  nextTryAt: number | null;
  /** Connect now instead of waiting for the next try. */
  retryNow: () => void;
  /** Set when the server closed the socket because the membership ended here. */
  departed: Departure | null;
  /** The last membership change that came as an event (the board says it in a line). */
  memberChange: MemberChange | null;
  commands: CommandEntry[];
  lastError: WireError | null;
  send: (command: MemberCommand) => CommandId;
  placeOrder: (order: Omit<PlaceOrder, "orderId"> & { orderId?: OrderId }) => CommandId;
  cancelOrder: (orderId: OrderId, reason?: string) => CommandId;
  completeOrder: (orderId: OrderId) => CommandId;
  dismissError: () => void;
  /** Drops a settled command from the list (a refusal the member has read). */
  forget: (id: CommandId) => void;
};

const OPEN = 1;

/** partysocket's back-off, set here so the board can say when the next try is. */
export const RECONNECT = { minReconnectionDelay: 1_000, maxReconnectionDelay: 10_000, reconnectionDelayGrowFactor: 1.5 } as const;

/** The delay partysocket waits before connect number `retryCount` (its `_getNextDelay`). */
export function reconnectDelay(retryCount: number): number {
  if (retryCount <= 0) return 0;
  const delay = RECONNECT.minReconnectionDelay * RECONNECT.reconnectionDelayGrowFactor ** (retryCount - 1);
  return Math.min(delay, RECONNECT.maxReconnectionDelay);
}

export function useHousehold(householdId: string, token: string, options: HouseholdOptions = {}): Household {
  const newId = options.newId ?? (() => crypto.randomUUID());
  const [state, dispatch] = useReducer(reducer, householdId, (id) => {
    const cached = loadCache(id);
    return initialState(cached?.view, cached?.commands, cached?.older);
  });
  const [unauthorized, setUnauthorized] = useReducer((_: boolean, v: boolean) => v, false);
  const [departed, setDeparted] = useReducer((_: Departure | null, v: Departure | null) => v, null);
  const freshRef = useRef(options.freshToken);
  freshRef.current = options.freshToken;

  // The query function is read at every (re)connect; it must stay the same function
  // (partysocket/react would otherwise make a new socket), so it reads refs.
  const seqRef = useRef(state.view.seq);
  seqRef.current = state.view.seq;
  const tokenRef = useRef(token);
  tokenRef.current = token;
  const welcomedRef = useRef(state.welcomed);
  welcomedRef.current = state.welcomed;
  const stateRef = useRef(state);
  stateRef.current = state;
  const socketRef = useRef<{ retryCount: number } | null>(null);
  /** The hook closed the socket itself (offline, refused token): no retry is coming. */
  const closedByUsRef = useRef(false);

  const query = useCallback(async () => {
    const since = seqRef.current;
    const token = freshRef.current ? await freshRef.current() : tokenRef.current;
    return { token, since: since > 0 ? String(since) : null };
  }, []);

  const socket = usePartySocket({
    host: options.host,
    party: "household",
    room: householdId,
    query,
    ...RECONNECT,
    // 4009: a newer socket with our _pk took over; do not steal it back. A departure
    // (4003, 4004, 4005) is final on this device.
    shouldReconnectOnClose: (event: CloseEvent) => event.code !== 4009 && !(event.code in DEPARTURE_CLOSE_CODES),
    onOpen: () => dispatch({ type: "status", status: "open" }),
    onMessage: (event: MessageEvent) => {
      const message = parseServerMessage(event.data);
      // A renewal's answer changes nothing on the board.
      if (message && !("renewed" in message)) dispatch({ type: "message", message });
    },
    onClose: (event: CloseEvent) => {
      const departure = DEPARTURE_CLOSE_CODES[event.code];
      if (departure) {
        setDeparted(departure);
        return;
      }
      const offline = typeof navigator !== "undefined" && navigator.onLine === false;
      // partysocket has scheduled its next connect (unless it gave up) before this runs.
      const retrying = event.code !== 4009 && !offline && !closedByUsRef.current;
      const nextTryAt = retrying ? Date.now() + reconnectDelay(socketRef.current?.retryCount ?? 1) : null;
      dispatch({ type: "disconnected", offline, nextTryAt });
      if (!welcomedRef.current && !offline) void checkAuth();
    },
  });

  socketRef.current = socket;

  // A socket refused before the upgrade looks like any failed connect to the browser;
  // ask the room's HTTP side whether the token is refused (401), and stop retrying if so.
  const checkAuth = useCallback(async () => {
    try {
      const base = options.host ? `${location.protocol}//${options.host}` : "";
      const res = await fetch(`${base}/parties/household/${householdId}`, {
        headers: { authorization: `Bearer ${tokenRef.current}` },
      });
      if (res.status === 401) {
        setUnauthorized(true);
        closedByUsRef.current = true;
        socket.close();
      }
    } catch {
      // Unreachable: partysocket keeps retrying.
    }
  }, [householdId, options.host, socket]);

  // Browsers keep a dead socket "open" for a while after the network goes; follow the
  // browser's own online/offline signal so commands queue at once and resume promptly.
  useEffect(() => {
    const offline = () => {
      dispatch({ type: "status", status: "offline" });
      closedByUsRef.current = true;
      socket.close();
    };
    const online = () => {
      dispatch({ type: "status", status: "connecting" });
      closedByUsRef.current = false;
      socket.reconnect();
    };
    window.addEventListener("offline", offline);
    window.addEventListener("online", online);
    return () => {
      window.removeEventListener("offline", offline);
      window.removeEventListener("online", online);
    };
  }, [socket]);

  // A renewed token goes to the open socket, which would otherwise close at the old
  // one's expiry (4001, and a reconnect).
  useEffect(() => {
    if (socket.readyState === OPEN) socket.send(JSON.stringify(renewMessage(token)));
  }, [token, socket]);

  // After each welcome: (re)send everything not settled. Ids make this idempotent.
  useEffect(() => {
    if (!state.welcomed || socket.readyState !== OPEN) return;
    for (const command of pendingCommands(stateRef.current)) {
      socket.send(JSON.stringify(commandMessage(command)));
    }
  }, [state.welcomed, socket]);

  // A gap: replay from what we have.
  useEffect(() => {
    const since = state.resyncFrom;
    if (since === null || !state.welcomed || socket.readyState !== OPEN) return;
    socket.send(JSON.stringify(syncMessage(since)));
    dispatch({ type: "syncSent", since });
  }, [state.resyncFrom, state.welcomed, socket]);

  // The cache follows the state.
  useEffect(() => {
    saveCache(householdId, state.view, state.commands, undefined, state.older);
  }, [householdId, state.view, state.commands, state.older]);

  const loadOlder = useCallback(async (list: List) => {
    const before = stateRef.current.older[olderKey(list)];
    if (before <= 0) return;
    const base = options.host ? `${location.protocol}//${options.host}` : "";
    try {
      const page = await fetchOlder(list, householdId, tokenRef.current, before, base);
      dispatch({ type: "older", list, before, page });
    } catch {
      // Unreachable or refused: the control stays, a later try reads again.
    }
  }, [householdId, options.host]);

  const send = useCallback(
    (command: MemberCommand): CommandId => {
      const identified = { ...command, id: newId() } as IdentifiedCommand;
      dispatch({ type: "queue", command: identified, at: new Date().toISOString() });
      // Sent now if welcomed on an open socket; otherwise on the next welcome.
      if (welcomedRef.current && socket.readyState === OPEN) {
        socket.send(JSON.stringify(commandMessage(identified)));
      }
      return identified.id;
    },
    // newId is a function prop; callers pass a stable one or none.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [socket],
  );

  const placeOrder = useCallback(
    (order: Omit<PlaceOrder, "orderId"> & { orderId?: OrderId }) =>
      send({ type: "PlaceOrder", payload: { ...order, orderId: order.orderId ?? newId() } }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [send],
  );
  const cancelOrder = useCallback(
    (orderId: OrderId, reason?: string) => {
      const payload: CancelOrder = reason ? { orderId, reason } : { orderId };
      return send({ type: "CancelOrder", payload });
    },
    [send],
  );
  const completeOrder = useCallback((orderId: OrderId) => send({ type: "CompleteOrder", payload: { orderId } }), [send]);
  const dismissError = useCallback(() => dispatch({ type: "dismissError" }), []);
  const forget = useCallback((id: CommandId) => dispatch({ type: "forget", id }), []);
  const retryNow = useCallback(() => {
    if (unauthorized) return;
    closedByUsRef.current = false;
    dispatch({ type: "status", status: "connecting" });
    socket.reconnect();
  }, [socket, unauthorized]);

  return useMemo(
    () => ({
      view: state.view,
      seq: state.view.seq,
      older: state.older,
      loadOlder,
      status: unauthorized ? "unauthorized" : state.status,
      welcomed: state.welcomed,
      nextTryAt: state.nextTryAt,
      retryNow,
      forget,
      departed,
      memberChange: state.memberChange,
      commands: state.commands,
      lastError: state.lastError,
      send,
      placeOrder,
      cancelOrder,
      completeOrder,
      dismissError,
    }),
    [state, unauthorized, departed, send, placeOrder, cancelOrder, completeOrder, dismissError, loadOlder, retryNow, forget],
  );
}
