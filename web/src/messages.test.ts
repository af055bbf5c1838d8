import { describe, expect, it } from "vitest";
import { ApiError } from "./api";
import { REFUSAL_CODES } from "./generated/names";
import { ANN, HH } from "./fixtures";
import type { EventEnvelope } from "./generated";
import { ERRORS, JOIN_ERRORS, REFUSALS, actorName, errorSentence, membershipLine, refusedSentence, sentence } from "./messages";
import { initialState, reducer } from "./state";
import type { IdentifiedCommand } from "./protocol";

const isSentence = (s: string) => /^[A-Z].*[.]$/.test(s) && !/[a-z]+_[a-z_]+/.test(s);

describe("the messages module", () => {
  it("has a sentence for every refusal code the core has, and for every wire error", () => {
    for (const code of REFUSAL_CODES) expect(isSentence(REFUSALS[code]), code).toBe(true);
    for (const [code, text] of Object.entries(ERRORS)) expect(isSentence(text), code).toBe(true);
    expect(Object.keys(REFUSALS).sort()).toEqual([...REFUSAL_CODES].sort());
  });

  it("says what a refused command was about, never its code", () => {
    const place: IdentifiedCommand = {
      id: "c",
      type: "PlaceOrder",
      payload: { orderId: "o", lines: [{ sku: "milk", quantity: 2, unitPriceCents: 129 }] },
    };
    // The items are named from the catalog the device read (the command names skus).
    const nameOf = (sku: string) => (sku === "milk" ? "Milk" : null);
    expect(refusedSentence(place, "ready_at_not_in_future", () => null, nameOf)).toBe(
      "Your order of 2 × Milk was not placed. The ready time has already passed; pick a later time.",
    );
    expect(refusedSentence(place, "price_changed")).toBe(
      "Your order of 2 × milk was not placed. A price changed since you looked; check the new price and send the order again.",
    );
    const cancel: IdentifiedCommand = { id: "c", type: "CancelOrder", payload: { orderId: "o" } };
    expect(refusedSentence(cancel, "cannot_cancel", () => "1 × Bread")).toBe(
      "The order of 1 × Bread was not cancelled. It can no longer be cancelled: it is already ready, collected or closed.",
    );
    expect(refusedSentence(cancel, "no_such_code_yet")).toBe("The order was not cancelled. Something went wrong. Try again in a moment.");
  });

  it("turns thrown errors into sentences: the API's codes, a failed fetch, a server fault", () => {
    expect(errorSentence(new ApiError(0, "network", "cannot reach the server: TypeError: Failed to fetch"))).toBe(ERRORS.network);
    expect(errorSentence(new TypeError("Failed to fetch"))).toBe(ERRORS.network);
    expect(errorSentence(new ApiError(410, "invite_expired", "the invite expired at …"))).toBe(ERRORS.invite_expired);
    expect(errorSentence(new ApiError(502, "http_502", "Bad Gateway"))).toBe(ERRORS.internal);
    expect(sentence("rate_limited")).toBe(ERRORS.rate_limited);
    expect(errorSentence("weird")).toBe("Something went wrong. Try again in a moment.");
  });
});

describe("who did what", () => {
  it("names a member, you, or the shop", () => {
    const names = (id: string) => (id === "b" ? "Bob" : "a member");
    expect(actorName({ kind: "member", id: ANN }, ANN, names)).toBe("you");
    expect(actorName({ kind: "member", id: "b" }, ANN, names)).toBe("Bob");
    expect(actorName({ kind: "system" }, ANN, names)).toBe("the shop");
    expect(actorName({ kind: "process" }, ANN, names)).toBe("the shop");
  });
});

describe("errors where they happen", () => {
  it("words a code for its context, and falls back to the general sentence", () => {
    expect(errorSentence(new ApiError(404, "not_found", "nothing at …"), JOIN_ERRORS)).toBe("This invite link is not valid (wrong household or code).");
    expect(errorSentence(new ApiError(410, "invite_used", "used"), JOIN_ERRORS)).toBe(ERRORS.invite_used);
    expect(errorSentence(new ApiError(404, "not_found", "nothing at …"))).toBe(ERRORS.not_found);
  });
});

describe("membership lines", () => {
  const BOB = "0191a000-0000-7000-8000-0000000000b2";
  const CY = "0191a000-0000-7000-8000-0000000000c3";
  const member = (seq: number, type: string, payload: Record<string, unknown>) =>
    ({
      id: `0191a000-0000-7000-8000-${String(seq).padStart(12, "0")}`,
      tenant: HH,
      seq,
      aggregateId: HH,
      version: seq,
      schemaVersion: 1,
      metadata: { commandId: HH, causationId: HH, correlationId: HH, actor: { kind: "system" } },
      createdAt: "2026-12-01T10:00:00Z",
      requiresJob: false,
      type,
      payload: { householdId: HH, ...payload },
    }) as unknown as EventEnvelope;
  const view = { seq: 2, orders: [], chores: [], members: [{ id: ANN, name: "Ann", role: "owner" as const }, { id: BOB, name: "Bob", role: "member" as const }] };

  it("folds a change live and says it with who did it, named as the board had them", () => {
    let s = reducer(initialState(), { type: "message", message: { welcome: { room: HH, connection: "c", seq: 2, state: view, olderOrders: 0, olderChores: 0 } } });
    s = reducer(s, { type: "message", message: { event: member(3, "MemberRemoved", { memberId: BOB, name: "Bob", by: ANN }) } });
    expect(s.view.members.map((m) => m.name)).toEqual(["Ann"]);
    expect(s.memberChange && membershipLine(s.memberChange, CY)).toBe("Ann removed Bob");
    expect(s.memberChange && membershipLine(s.memberChange, ANN)).toBe("You removed Bob");
    s = reducer(s, { type: "message", message: { event: member(4, "MemberJoined", { memberId: CY, name: "Cy", role: "member", invitedBy: ANN }) } });
    expect(s.memberChange && membershipLine(s.memberChange, ANN)).toBe("Cy joined");
    s = reducer(s, { type: "message", message: { event: member(5, "MemberRoleChanged", { memberId: CY, name: "Cy", role: "owner", by: ANN }) } });
    expect(s.view.members).toEqual([{ id: ANN, name: "Ann", role: "owner" }, { id: CY, name: "Cy", role: "owner" }]);
    expect(s.memberChange && membershipLine(s.memberChange, CY)).toBe("Ann made you an owner");
    s = reducer(s, { type: "message", message: { event: member(6, "MemberLeft", { memberId: CY, name: "Cy" }) } });
    expect(s.memberChange && membershipLine(s.memberChange, ANN)).toBe("Cy left");
    // Found by reconciling with the directory: no one is named.
    s = reducer(s, { type: "message", message: { event: member(7, "MemberRoleChanged", { memberId: ANN, name: "Ann", role: "member", by: null }) } });
    expect(s.memberChange && membershipLine(s.memberChange, CY)).toBe("Ann is now a member");
  });
});
