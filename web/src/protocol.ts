// The protocol's types come from the Rust types (./generated, by ts-rs); this module
// only names a few shapes the client builds from them.
import type { ChoreCommand, ClientMessage, Command, CommandId, ServerMessage } from "./generated";
import type { MemberCommandType } from "./generated/names";

export type * from "./generated";
export * from "./generated/names";

/** The commands a member may send (the core refuses the internal ones): the core's
 * domains' commands narrowed to the member types the core lists (generated/names.ts). */
export type MemberCommand = Extract<Command | ChoreCommand, { type: MemberCommandType }>;

/** A member command with its client-chosen id (the idempotency key). */
export type IdentifiedCommand = MemberCommand & { id: CommandId };

export function commandMessage(command: IdentifiedCommand): ClientMessage {
  return { command: { id: command.id, type: command.type, payload: command.payload } };
}

export function syncMessage(since: number): ClientMessage {
  return { sync: { since } };
}

/** Hands an open socket a renewed access token (it would close with 4001 at the old one's expiry). */
export function renewMessage(token: string): ClientMessage {
  return { renew: { token } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses a frame from the server. The shapes are the server's (generated types); this
 * checks only the envelope (one known key with an object), so a malformed frame is
 * dropped instead of corrupting the state.
 */
export function parseServerMessage(data: unknown): ServerMessage | null {
  if (typeof data !== "string") return null;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (!isObject(value)) return null;
  const keys = Object.keys(value);
  if (keys.length !== 1) return null;
  const key = keys[0];
  const body = key === undefined ? undefined : value[key];
  if (!isObject(body)) return null;
  switch (key) {
    case "welcome":
    case "event":
    case "ack":
    case "rejected":
    case "error":
    case "renewed":
      return value as ServerMessage;
    default:
      return null;
  }
}
