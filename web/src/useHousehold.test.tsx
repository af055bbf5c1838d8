// The hook with the socket mocked at its boundary (partysocket/react's usePartySocket).
import { act, cleanup, renderHook } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HH, O1, placed, step, welcome } from "./fixtures";
import type { ServerMessage } from "./generated";
import { emptyView, foldEvents } from "./projection";

type Options = {
  room: string;
  query: () => Promise<Record<string, string | null>>;
  onOpen?: () => void;
  onMessage?: (e: MessageEvent) => void;
  onClose?: (e: CloseEvent) => void;
};

const fake = vi.hoisted(() => ({
  options: null as unknown as Options,
  sent: [] as string[],
  readyState: 0,
  closed: 0,
  reconnected: 0,
}));

vi.mock("partysocket/react", () => {
  const socket = {
    get readyState() {
      return fake.readyState;
    },
    send: (data: string) => fake.sent.push(data),
    close: () => {
      fake.closed++;
    },
    reconnect: () => {
      fake.reconnected++;
    },
  };
  return {
    usePartySocket: (options: Options) => {
      fake.options = options;
      return socket;
    },
  };
});

const { reconnectDelay, useHousehold } = await import("./useHousehold");

let ids = 0;
const newId = () => `id-${++ids}`;

function open() {
  act(() => {
    fake.readyState = 1;
    fake.options.onOpen?.();
  });
}
function receive(message: ServerMessage) {
  act(() => fake.options.onMessage?.(new MessageEvent("message", { data: JSON.stringify(message) })));
}
function close() {
  act(() => {
    fake.readyState = 3;
    fake.options.onClose?.(new CloseEvent("close", { code: 1006 }));
  });
}
const sent = () => fake.sent.map((s) => JSON.parse(s) as Record<string, unknown>);

beforeEach(() => {
  localStorage.clear();
  fake.sent = [];
  fake.readyState = 0;
  fake.closed = 0;
  fake.reconnected = 0;
  ids = 0;
  vi.stubGlobal("fetch", vi.fn(async () => new Response("{}", { status: 200 })));
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("useHousehold", () => {
  it("connects to the household room with the token, folds the welcome and events", async () => {
    const { result } = renderHook(() => useHousehold(HH, "tok", { newId }));
    expect(fake.options.room).toBe(HH);
    await expect(fake.options.query()).resolves.toEqual({ token: "tok", since: null });
    expect(result.current.status).toBe("connecting");
    open();
    receive(welcome(foldEvents(emptyView(), [placed(1)]).view));
    receive({ event: step(2, "StockReserved") });
    expect(result.current.status).toBe("open");
    expect(result.current.seq).toBe(2);
    expect(result.current.view.orders[0]?.status).toBe("stockReserved");
  });

  it("sends a command with its id and settles it by the ack", () => {
    const { result } = renderHook(() => useHousehold(HH, "tok", { newId }));
    open();
    receive(welcome(emptyView()));
    let id = "";
    act(() => {
      id = result.current.placeOrder({ lines: [{ sku: "milk", quantity: 1, unitPriceCents: 129 }] });
    });
    expect(sent()).toEqual([
      { command: { id, type: "PlaceOrder", payload: { orderId: "id-1", lines: [{ sku: "milk", quantity: 1, unitPriceCents: 129 }] } } },
    ]);
    expect(result.current.commands[0]?.state.kind).toBe("pending");
    receive({ ack: { id, status: "accepted", seq: 1 } });
    expect(result.current.commands[0]?.state).toEqual({ kind: "acknowledged", duplicate: false, seq: 1 });
  });

  it("keeps commands made offline and sends them after the next welcome; a duplicate ack settles them", () => {
    const { result } = renderHook(() => useHousehold(HH, "tok", { newId }));
    let id = "";
    act(() => {
      id = result.current.completeOrder(O1);
    });
    expect(fake.sent).toEqual([]);
    open();
    expect(fake.sent).toEqual([]); // not before the welcome
    receive(welcome(emptyView()));
    expect(sent()).toEqual([{ command: { id, type: "CompleteOrder", payload: { orderId: O1 } } }]);
    // The connection drops before the ack: the command is resent on the next welcome.
    close();
    open();
    receive(welcome(emptyView()));
    expect(sent()).toHaveLength(2);
    receive({ ack: { id, status: "duplicate", seq: 0 } });
    expect(result.current.commands[0]?.state).toEqual({ kind: "acknowledged", duplicate: true, seq: 0 });
  });

  it("asks for a resync on a gap", () => {
    renderHook(() => useHousehold(HH, "tok", { newId }));
    open();
    receive(welcome(foldEvents(emptyView(), [placed(1)]).view));
    receive({ event: step(3, "PaymentCaptured") });
    expect(sent()).toEqual([{ sync: { since: 1 } }]);
  });

  it("caches the board, seq and pending commands; a remount shows them and resumes with since", async () => {
    const first = renderHook(() => useHousehold(HH, "tok", { newId }));
    open();
    receive(welcome(foldEvents(emptyView(), [placed(1), step(2, "StockReserved")]).view));
    close();
    act(() => {
      first.result.current.cancelOrder(O1, "changed my mind");
    });
    first.unmount();
    fake.sent = [];
    fake.readyState = 0;

    const second = renderHook(() => useHousehold(HH, "tok", { newId }));
    expect(second.result.current.seq).toBe(2);
    expect(second.result.current.view.orders[0]?.status).toBe("stockReserved");
    expect(second.result.current.commands.map((c) => c.state.kind)).toEqual(["pending"]);
    await expect(fake.options.query()).resolves.toEqual({ token: "tok", since: "2" });
    open();
    receive(welcome(foldEvents(emptyView(), [placed(1), step(2, "StockReserved")]).view));
    expect(sent()).toEqual([{ command: { id: "id-1", type: "CancelOrder", payload: { orderId: O1, reason: "changed my mind" } } }]);
  });

  it("follows the browser offline and online", () => {
    const { result } = renderHook(() => useHousehold(HH, "tok", { newId }));
    open();
    act(() => {
      window.dispatchEvent(new Event("offline"));
    });
    expect(result.current.status).toBe("offline");
    expect(fake.closed).toBe(1);
    act(() => {
      window.dispatchEvent(new Event("online"));
    });
    expect(fake.reconnected).toBe(1);
    expect(result.current.status).toBe("connecting");
  });

  it("reports a refused token as unauthorized", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => new Response("{}", { status: 401 })));
    const { result } = renderHook(() => useHousehold(HH, "bad", { newId }));
    close();
    await vi.waitFor(() => expect(result.current.status).toBe("unauthorized"));
    expect(fake.closed).toBe(1);
  });
});

describe("the reconnect schedule", () => {
  it("follows partysocket's back-off with the options the hook sets: 0, then 1 s growing x1.5 up to 10 s", () => {
    expect([0, 1, 2, 3, 7, 20].map(reconnectDelay)).toEqual([0, 1_000, 1_500, 2_250, 10_000, 10_000]);
  });
});
