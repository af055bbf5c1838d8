import { describe, expect, it } from "vitest";
import { announcements } from "./announce";
import { ANN, O1, O2, placed, step } from "./fixtures";
import { emptyView, foldEvents } from "./projection";

const BOB = "0191a000-0000-7000-8000-0000000000b0";
const who = (id: string) => (id === BOB ? "Bob" : "Ann");

describe("screen reader announcements", () => {
  it("says new orders and the steps people wait for, not every step", () => {
    const one = foldEvents(emptyView(), [placed(1)]).view.orders;
    const bobs = placed(2, O2, { placedBy: BOB });
    const two = foldEvents(emptyView(), [placed(1), bobs]).view.orders;
    expect(announcements(one, two, ANN, who)).toEqual(["Bob placed an order of 2 × Milk."]);
    expect(announcements([], one, ANN, who)).toEqual(["Your order of 2 × Milk was received."]);
    const reserved = foldEvents(emptyView(), [placed(1), step(2, "StockReserved")]).view.orders;
    expect(announcements(one, reserved, ANN, who)).toEqual([]);
    const ready = foldEvents(emptyView(), [placed(1), step(2, "OrderReady")]).view.orders;
    expect(announcements(one, ready, BOB, who)).toEqual(["Ann's order of 2 × Milk is ready."]);
  });

  it("does not read out a page of older orders", () => {
    const both = foldEvents(emptyView(), [placed(1, O2), placed(2, O1)]).view.orders;
    expect(announcements(both.slice(1), both, ANN, who)).toEqual([]);
  });
});
