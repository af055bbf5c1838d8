// Golden vectors: the client's fold (projection.ts) against the server's
// (`HouseholdView::apply` in crates/core/src/projection.rs). crates/core/tests/golden.rs
// writes generated/golden/projection.json: named cases, each a household's events as the
// server sends them and the view the Rust fold gives, as `welcome.state` carries it. Every
// case is replayed here event by event from the empty view, and the whole view must be
// equal: seq, every order with every field, every timeline entry, and the gap if the case
// has one. Regenerate the file from Rust, never by hand (docs/web.md).
import { describe, expect, it } from "vitest";
import golden from "./generated/golden/projection.json";
import type { EventEnvelope, HouseholdView } from "./generated";
import { emptyView, foldEvents } from "./projection";

type Case = {
  name: string;
  about: string;
  events: EventEnvelope[];
  view: HouseholdView;
  gap: { at: number; got: number } | null;
};

// The JSON's inferred type has `string` where the generated types have literal unions.
const cases = (golden as unknown as { cases: Case[] }).cases;

describe("golden vectors: foldEvents equals HouseholdView::apply", () => {
  it("has the cases", () => {
    expect(cases.length).toBeGreaterThan(10);
  });

  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const result = foldEvents(emptyView(), c.events);
    expect(result.view).toStrictEqual(c.view);
    expect(result.kind === "gap" ? { at: result.at, got: result.got } : null).toStrictEqual(c.gap);
  });
});
