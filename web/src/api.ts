// The HTTP API of `hearth serve` (docs/rooms.md): households, invites, join, catalog.
import type {
  AcceptInvite,
  CatalogItem,
  CreateHousehold,
  CreateInvite,
  Invite,
  Member,
  Membership,
  OrdersPage,
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
export const fetchMembers = (household: string, token: string) =>
  call<Member[]>("GET", `/households/${encodeURIComponent(household)}/members`, undefined, token);
export const fetchCatalog = () => call<CatalogItem[]>("GET", "/catalog");
/** The orders placed before the `before`-th, the most recent first up to the server's bound. */
export const fetchOlderOrders = (household: string, token: string, before: number, base = "") =>
  call<OrdersPage>("GET", `${base}/households/${encodeURIComponent(household)}/orders?before=${before}`, undefined, token);

export const inviteLink = (invite: Invite, origin: string = location.origin) =>
  `${origin}/join/${invite.household}/${invite.code}`;
