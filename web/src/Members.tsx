// The members view: who is in the household and their roles; owners remove members and
// make others owners; anyone leaves; a member sees and ends their own sessions. Every
// refusal is shown in words (the server's codes: docs/rooms.md, "Members and roles").
// The list is the board's view of the household's log (membership events, live: a
// change made anywhere shows here without a refetch); it is listed over HTTP once on
// opening, which also has the server record any change its log missed.
import { useCallback, useEffect, useState } from "react";
import { ApiError, endSession, fetchMembers, fetchSessions, removeMember, setRole } from "./api";
import { when } from "./format";
import type { Member, MemberView, SessionView } from "./generated";
import { useZone } from "./zone";

const WHY: Record<string, string> = {
  last_owner: "A household needs an owner: make someone else an owner first.",
  not_an_owner: "Only an owner can do that.",
  no_such_member: "They are no longer a member.",
};

function say(e: unknown): string {
  return e instanceof ApiError ? (WHY[e.code] ?? e.message) : String(e);
}

export function Members({
  householdId,
  me,
  token,
  live,
  onLeft,
  onMembers,
}: {
  householdId: string;
  me: string;
  token: string;
  /** The members as the live board has them (null: not live yet; the listing shows). */
  live: MemberView[] | null;
  /** Called after this member left the household. */
  onLeft: () => void;
  /** The list as last read (the board names who placed each order from it). */
  onMembers?: (members: Member[]) => void;
}) {
  const zone = useZone();
  const [listed, setListed] = useState<Member[]>([]);
  // The live view once it has members (a household older than membership events has
  // none until the listing's reconciliation records them).
  const members: MemberView[] = live !== null && live.length > 0 ? live : listed;
  const [sessions, setSessions] = useState<SessionView[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const reload = useCallback(async () => {
    try {
      const [list, mine] = await Promise.all([fetchMembers(householdId, token), fetchSessions(householdId, token)]);
      setListed(list);
      setSessions(mine);
      onMembers?.(list);
    } catch {
      // Refused or unreachable: the board says so; the list stays as it was.
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [householdId, token]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const self = members.find((m) => m.id === me);
  const owner = self?.role === "owner";

  async function act(action: () => Promise<unknown>, after?: () => void) {
    setBusy(true);
    setError(null);
    try {
      await action();
      // The change comes back as an event: the list follows it without a refetch.
      if (after) after();
    } catch (e) {
      setError(say(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card" data-testid="members">
      <h2>Members</h2>
      <ul className="plain">
        {members.map((m) => (
          <li key={m.id} data-testid="member" data-member={m.id} data-role={m.role}>
            {m.name} {m.id === me && <span className="muted">(you)</span>} <span className="muted">{m.role}</span>{" "}
            {owner && m.id !== me && (
              <>
                {m.role === "member" && (
                  <button disabled={busy} onClick={() => void act(() => setRole(householdId, token, m.id, "owner"))}>
                    Make {m.name} an owner
                  </button>
                )}{" "}
                <button disabled={busy} onClick={() => void act(() => removeMember(householdId, token, m.id))}>
                  Remove {m.name}
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
      {self && (
        <button disabled={busy} onClick={() => void act(() => removeMember(householdId, token, me), onLeft)}>
          Leave household
        </button>
      )}
      {error && (
        <p className="error" role="alert" data-testid="members-error">
          {error}
        </p>
      )}
      {sessions.length > 0 && (
        <details>
          <summary>Your devices ({sessions.length})</summary>
          <ul className="plain">
            {sessions.map((s) => (
              <li key={s.id} data-testid="session">
                {s.device} <span className="muted">since {when(s.createdAt, zone)}</span>{" "}
                {s.current ? (
                  <span className="muted">(this device)</span>
                ) : (
                  <button disabled={busy} onClick={() => void act(() => endSession(householdId, token, s.id), () => void reload())}>
                    Sign out
                  </button>
                )}
              </li>
            ))}
          </ul>
        </details>
      )}
    </section>
  );
}
