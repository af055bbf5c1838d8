// The HTTP API of `hearth serve` (docs/rooms.md): households, invites, join, members,
// sessions, catalog.
import type {
  AcceptInvite,
  CatalogItem,
  CreateHousehold,
  CreateInvite,
  Household,
  Invite,
  InvitePreview,
  Member,
  Membership,
  List,
  Page,
  Refreshed,
  Role,
  SessionView,
  WireError,
} from "./generated";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "network", `cannot reach the server: ${String(e)}`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON
  }
  if (!res.ok) {
    const err = (json as { error?: WireError } | null)?.error;
    throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? (text || res.statusText));
  }
  return json as T;
}

export const createHousehold = (req: CreateHousehold) => call<Membership>("POST", "/households", req);
export const joinHousehold = (household: string, req: AcceptInvite) =>
  call<Membership>("POST", `/households/${encodeURIComponent(household)}/join`, req);
export const createInvite = (household: string, token: string, req: CreateInvite = {}) =>
  call<Invite>("POST", `/households/${encodeURIComponent(household)}/invites`, req, token);
/** The household as it is now: its name and time zone. */
export const fetchHousehold = (household: string, token: string) =>
  call<Household>("GET", `/households/${encodeURIComponent(household)}`, undefined, token);
/** An owner sets the household's time zone (an IANA name; refused as `unknown_time_zone`). */
export const setTimeZone = (household: string, token: string, timeZone: string) =>
  call<Household>("PUT", `/households/${encodeURIComponent(household)}/time-zone`, { timeZone }, token);
export const fetchMembers = (household: string, token: string) =>
  call<Member[]>("GET", `/households/${encodeURIComponent(household)}/members`, undefined, token);
/** An owner removes a member; a member removing themselves leaves. */
export const removeMember = (household: string, token: string, member: string) =>
  call<Member>("DELETE", `/households/${encodeURIComponent(household)}/members/${encodeURIComponent(member)}`, undefined, token);
export const setRole = (household: string, token: string, member: string, role: Role) =>
  call<Member>("PUT", `/households/${encodeURIComponent(household)}/members/${encodeURIComponent(member)}/role`, { role }, token);
/** Exchanges the session's refresh credential (single use) for the next token and credential. */
export const refreshSession = (household: string, refresh: string, base = "") =>
  call<Refreshed>("POST", `${base}/households/${encodeURIComponent(household)}/sessions/refresh`, { refresh });
export const fetchSessions = (household: string, token: string) =>
  call<SessionView[]>("GET", `/households/${encodeURIComponent(household)}/sessions`, undefined, token);
export const endSession = (household: string, token: string, session: string) =>
  call<null>("DELETE", `/households/${encodeURIComponent(household)}/sessions/${encodeURIComponent(session)}`, undefined, token);
/** The household an invite is for and who made it (no token: the code is the secret). */
export const fetchInvitePreview = (household: string, code: string) =>
  call<InvitePreview>("GET", `/households/${encodeURIComponent(household)}/invites/${encodeURIComponent(code)}`);
export const fetchCatalog = () => call<CatalogItem[]>("GET", "/catalog");
/** A list's items before its `before`-th, the most recent first up to the server's bound. */
export const fetchOlder = (list: List, household: string, token: string, before: number, base = "") =>
  call<Page>("GET", `${base}/households/${encodeURIComponent(household)}/${list}?before=${before}`, undefined, token);

export const inviteLink = (invite: Invite, origin: string = location.origin) =>
  `${origin}/join/${invite.household}/${invite.code}`;
