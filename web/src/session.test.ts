// session.ts: a refresh presents the stored credential once, adopts another tab's newer
// one instead of presenting a spent one, and reports a refused credential.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "./api";
import type { Membership } from "./generated";
import { findMembership, saveMembership } from "./memberships";
import { DEPARTURE_CLOSE_CODES, depart, renew, takeDepartureNotice } from "./session";

const HH = "0190c0de-0000-7000-8000-000000000001";

function membership(refresh: string, token = `token-${refresh}`): Membership {
  return {
    household: { id: HH, name: "Home", timeZone: "Europe/Berlin", createdAt: "2026-12-01T00:00:00Z" },
    member: { household: HH, id: "0190c0de-0000-7000-8000-0000000000aa", name: "Ann", role: "owner", joinedAt: "2026-12-01T00:00:00Z" },
    token,
    expiresAt: new Date(Date.now() + 3_000).toISOString(),
    refresh,
    session: "0190c0de-0000-7000-8000-0000000000ff",
  };
}

function answer(status: number, body: unknown) {
  return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } }));
}

describe("renew", () => {
  const fetchMock = vi.fn<typeof fetch>();
  beforeEach(() => {
    localStorage.clear();
    fetchMock.mockReset();
    vi.stubGlobal("fetch", fetchMock);
  });
  afterEach(() => vi.unstubAllGlobals());

  it("presents the stored credential once and keeps the next one", async () => {
    const held = membership("r1");
    saveMembership(held);
    fetchMock.mockImplementation(() => answer(200, { ...membership("r2", "t2"), household: undefined }));
    const next = await renew(held);
    expect(fetchMock).toHaveBeenCalledTimes(1);
    const [url, init] = fetchMock.mock.calls[0] ?? [];
    expect(url).toBe(`/households/${HH}/sessions/refresh`);
    expect(JSON.parse(String(init?.body))).toEqual({ refresh: "r1" });
    expect(next.token).toBe("t2");
    expect(findMembership(HH)?.refresh).toBe("r2");
    expect(findMembership(HH)?.household.name).toBe("Home");
  });

  it("adopts what another tab stored instead of presenting a spent credential", async () => {
    const held = membership("r1");
    saveMembership(membership("r2", "t2"));
    const next = await renew(held);
    expect(fetchMock).not.toHaveBeenCalled();
    expect(next.token).toBe("t2");
  });

  it("reports a refused credential with its code", async () => {
    const held = membership("r1");
    saveMembership(held);
    fetchMock.mockImplementation(() => answer(401, { error: { code: "credential_reused", message: "ended" } }));
    await expect(renew(held)).rejects.toMatchObject({ code: "credential_reused" });
    await expect(renew(held)).rejects.toBeInstanceOf(ApiError);
  });
});

describe("departure", () => {
  it("forgets the membership and leaves one notice saying why", () => {
    localStorage.clear();
    saveMembership(membership("r1"));
    expect(DEPARTURE_CLOSE_CODES[4003]).toBe("removed");
    depart(membership("r1"), DEPARTURE_CLOSE_CODES[4003] ?? "ended");
    expect(findMembership(HH)).toBeUndefined();
    expect(takeDepartureNotice()).toBe("You were removed from Home by an owner.");
    expect(takeDepartureNotice()).toBeNull();
  });
});
