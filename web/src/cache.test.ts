import { describe, expect, it } from "vitest";
import { loadCache } from "./cache";
import { HH, O1 } from "./fixtures";

/** A localStorage holding `value` for the household. */
function storageWith(value: unknown): Storage {
  const items = new Map([[`hearth:household:${HH}`, JSON.stringify(value)]]);
  return {
    getItem: (k: string) => items.get(k) ?? null,
    setItem: (k: string, v: string) => void items.set(k, v),
    removeItem: (k: string) => void items.delete(k),
    clear: () => items.clear(),
    key: () => null,
    length: items.size,
  };
}

describe("a cache kept before the server's catalog", () => {
  it("sends a pending order as skus, quantities and the prices shown, and reads old orders", () => {
    const old = {
      version: 1,
      view: {
        seq: 1,
        orders: [{ id: O1, status: "cancelled", lines: [], totalCents: 0, cancelledBy: { kind: "system" }, timeline: [] }],
        chores: [],
        members: [],
      },
      commands: [
        {
          command: {
            id: "c",
            type: "PlaceOrder",
            payload: { orderId: "o", lines: [{ sku: "milk", name: "Milk", quantity: 2, unitPriceCents: 129 }] },
          },
          state: { kind: "pending" },
          createdAt: "2026-11-27T10:00:00Z",
        },
      ],
    };
    const cached = loadCache(HH, storageWith(old));
    expect(cached?.commands[0]?.command.payload).toEqual({ orderId: "o", lines: [{ sku: "milk", quantity: 2, unitPriceCents: 129 }] });
    expect(cached?.view.orders[0]).toMatchObject({ cancelReason: null, completedBy: null });
  });
});
