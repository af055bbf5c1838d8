// A member's session on this device (docs/rooms.md, "Sessions"): a short-lived access
// token and a single-use refresh credential, kept with the membership in localStorage.
//
// - The token is renewed silently before it expires (at 60% of its remaining life), and
//   on demand before a socket (re)connects (`fresh`), so a member is never locked out
//   while their membership stands.
// - Tabs of one browser share the credential: a refresh runs under a Web Lock per
//   household, and first re-reads what another tab may have stored meanwhile, so the
//   credential is never presented twice (which the server treats as theft and ends the
//   session).
// - A refusal of the credential (the session was ended, the member removed) ends the
//   session here too: the board then says why and takes the member back to their
//   households (`depart`).
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, refreshSession } from "./api";
import type { Membership } from "./generated";
import { findMembership, removeMembership, saveMembership } from "./memberships";

/** Why a member is no longer in a household on this device. */
export type Departure = "removed" | "left" | "ended";

/** The socket close codes that end a membership on this device (docs/rooms.md). */
export const DEPARTURE_CLOSE_CODES: Record<number, Departure> = { 4003: "removed", 4004: "ended", 4005: "left" };

const NOTICE_KEY = "hearth:departure";

export function departureSentence(reason: Departure, household: string): string {
  switch (reason) {
    case "removed":
      return `You were removed from ${household} by an owner.`;
    case "left":
      return `You left ${household}.`;
    case "ended":
      return `This device was signed out of ${household}. Ask a member for a new invite link to come back.`;
  }
}

/** Forgets the membership and leaves a notice for the households page. */
export function depart(membership: Membership, reason: Departure): void {
  removeMembership(membership.household.id);
  sessionStorage.setItem(NOTICE_KEY, departureSentence(reason, membership.household.name));
}

/** The notice left by `depart`, once. */
export function takeDepartureNotice(): string | null {
  const notice = sessionStorage.getItem(NOTICE_KEY);
  sessionStorage.removeItem(NOTICE_KEY);
  return notice;
}

const REFUSED = new Set(["session_ended", "credential_reused", "session_not_found", "unauthorized"]);

/** Renews the token of `held` once (under the household's lock): the stored membership after it. */
export async function renew(held: Membership, base = ""): Promise<Membership> {
  const householdId = held.household.id;
  const run = async () => {
    const current = findMembership(householdId);
    if (!current) throw new ApiError(401, "session_ended", "no longer a member on this device");
    // Another tab renewed since we read it: its token is the newer one.
    if (current.refresh !== held.refresh) return current;
    const next = await refreshSession(householdId, current.refresh, base);
    const renewed: Membership = { ...current, ...next, member: next.member };
    saveMembership(renewed);
    return renewed;
  };
  const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
  return locks ? locks.request(`hearth:refresh:${householdId}`, run) : run();
}

function remainingMs(m: Membership): number {
  return Date.parse(m.expiresAt) - Date.now();
}

export type Session = {
  /** The current access token. */
  token: string;
  /** A token valid now (renewed first if it is about to expire): for (re)connects. */
  fresh: () => Promise<string>;
  /** Set when the session can no longer be renewed. */
  ended: Departure | null;
};

export function useSession(initial: Membership, base = ""): Session {
  const householdId = initial.household.id;
  const [membership, setMembership] = useState(() => findMembership(householdId) ?? initial);
  const [ended, setEnded] = useState<Departure | null>(null);
  const ref = useRef(membership);
  ref.current = membership;

  const renewNow = useCallback(async (): Promise<Membership | null> => {
    try {
      const next = await renew(ref.current, base);
      setMembership(next);
      return next;
    } catch (e) {
      if (e instanceof ApiError && REFUSED.has(e.code)) setEnded("ended");
      return null;
    }
  }, [householdId, base]);

  // Renew at 60% of what is left (at least 500 ms from now); retry a failed attempt soon.
  useEffect(() => {
    if (ended) return;
    const wait = Math.max(remainingMs(membership) * 0.6, 500);
    const timer = setTimeout(() => {
      void renewNow().then((next) => {
        if (!next) setMembership((m) => ({ ...m }));
      });
    }, wait);
    return () => clearTimeout(timer);
  }, [membership, ended, renewNow]);

  const fresh = useCallback(async () => {
    const m = ref.current;
    if (remainingMs(m) > 2_000) return m.token;
    return (await renewNow())?.token ?? m.token;
  }, [renewNow]);

  return { token: membership.token, fresh, ended };
}
