// Every refusal and error the app shows, as a sentence a household member can act on.
// The one place for these words: components never show a raw code or a server message.
//
// REFUSALS are generated (generated/names.ts) from the sentence each domain's refusal has
// in Rust, so a new rule comes with its sentence.
// ERRORS covers the wire's error codes (`{"error"}` frames and HTTP error bodies,
// `codes` in crates/axum/src/wire.rs) and the client's own (`network`).
import type { RefusalCode } from "./generated/names";
import { REFUSAL_CODES, REFUSAL_SENTENCES } from "./generated/names";
import type { WireErrorCode } from "./generated/names";
import type { Actor } from "./generated";
import type { IdentifiedCommand } from "./protocol";
import type { MemberChange } from "./state";

/** What a refused command was about, in words ("your order of 2 × Milk"). */
export type Subject = { what: string };

/** How far ahead a ready-at time may be: the core's `limits::MAX_READY_AT_DAYS`. */
export const READY_AT_MAX_DAYS = 7;

/** Each refusal's sentence: written once, in Rust, beside the rule (the core's
 * `Refusal::sentence` of each domain), and generated into names.ts. */
export const REFUSALS: Readonly<Record<RefusalCode, string>> = REFUSAL_SENTENCES;

/** The wire's error codes (crates/axum/src/wire.rs, `codes`, generated into names.ts as
 * `WIRE_ERROR_CODES`: a new code fails type-checking until it has a sentence here) and the
 * client's own (`network`). */
export const ERRORS: Readonly<Record<WireErrorCode | "network", string>> = {
  network: "The server cannot be reached. Check your connection; nothing was changed.",
  invalid_json: "The app sent something the server could not read. Reload the page and try again.",
  unknown_message_type: "The app sent something the server does not understand. Reload the page to update the app.",
  invalid_message: "Some of what you entered is not accepted. Check the fields and try again.",
  unknown_command_type: "The server does not know that action. Reload the page to update the app.",
  invalid_payload: "Some of what you entered is not accepted. Check the fields and try again.",
  tenant_mismatch: "That belongs to another household.",
  frame_too_large: "That is too much at once; make it smaller.",
  rate_limited: "Too many changes at once. They will be sent again in a moment.",
  too_many_connections: "Too many connections from this network. Close some tabs and try again.",
  too_many_sockets: "This household is open in too many tabs or devices. Close some and try again.",
  binary_not_supported: "The app sent something the server does not understand. Reload the page.",
  unavailable: "The server is busy right now. Your change is kept and will be sent again.",
  contention: "Someone changed the household at the same moment. Your change will be sent again.",
  unauthorized: "This device is not allowed into the household any more. Ask a member for a new invite link.",
  not_found: "That could not be found. It may have been removed.",
  invite_expired: "This invite link has expired. Ask for a new one.",
  invite_used: "This invite link was already used: each link admits one person. Ask for a new one.",
  conflict: "That clashes with something that just changed. Reload and try again.",
  method_not_allowed: "The app asked the server something it does not offer. Reload the page.",
  body_too_large: "That is too much at once; make it smaller.",
  uri_too_long: "That link is too long.",
  bad_request: "The server did not accept that request. Reload the page and try again.",
  internal: "Something went wrong on the server. Try again in a moment.",
  unstorable_text: "The text contains characters that cannot be stored; retype it.",
  origin_not_allowed: "This page is not allowed to talk to the server. Open the app from its own address.",
  not_an_owner: "Only an owner of the household can do that.",
  last_owner: "The household needs at least one owner: make someone else an owner first.",
  no_such_member: "That person is no longer a member of the household.",
  session_not_found: "This device is signed out of the household. Ask a member for a new invite link.",
  session_ended: "This device was signed out of the household. Ask a member for a new invite link.",
  credential_reused: "This device's sign-in was used twice, so it was ended for safety. Ask a member for a new invite link.",
  unknown_time_zone: "That is not a time zone the server knows. Pick one from the list, such as Europe/Berlin.",
  // Webhook answers: for providers, never a member's client; listed because every code is.
  signature_invalid: "The provider's signature is missing or wrong.",
  signature_expired: "The provider's signature is too old or too far ahead.",
  unknown_household: "That household does not exist.",
};
export type ErrorCode = keyof typeof ERRORS;

const isRefusal = (code: string): code is RefusalCode => (REFUSAL_CODES as readonly string[]).includes(code);
const isError = (code: string): code is ErrorCode => Object.hasOwn(ERRORS, code);

/** The sentence for any code: a refusal's, an error's, or a general one. */
export function sentence(code: string): string {
  if (isRefusal(code)) return REFUSALS[code];
  if (isError(code)) return ERRORS[code];
  return "Something went wrong. Try again in a moment.";
}

/** The name of an item by its sku, as the catalog this device read says (null: unknown). */
export type NameOf = (sku: string) => string | null;

/** What a command was about, in words; `nameOf` names the items of an order not placed. */
export function commandSubject(command: IdentifiedCommand, describeOrder: (orderId: string) => string | null, nameOf: NameOf = () => null): string {
  switch (command.type) {
    case "PlaceOrder":
      return `Your order of ${linesText(command.payload.lines, nameOf)} was not placed`;
    case "CancelOrder": {
      const order = describeOrder(command.payload.orderId);
      return `The order${order ? ` of ${order}` : ""} was not cancelled`;
    }
    case "CompleteOrder": {
      const order = describeOrder(command.payload.orderId);
      return `The order${order ? ` of ${order}` : ""} was not marked collected`;
    }
    case "ScheduleChore":
      return `The chore “${command.payload.title}” was not scheduled`;
    case "CompleteChore":
      return "The chore was not marked done";
    case "SkipChore":
      return "The chore was not skipped";
    case "ProposeSwap":
      return "The swap was not proposed";
    case "AcceptSwap":
      return "The swap was not accepted";
    case "DeclineSwap":
      return "The swap was not declined";
  }
}

/** "Your order of 2 × Milk was not placed: add at least one item…" */
export function refusedSentence(
  command: IdentifiedCommand,
  code: string,
  describeOrder: (orderId: string) => string | null = () => null,
  nameOf: NameOf = () => null,
): string {
  const text = sentence(code);
  return `${commandSubject(command, describeOrder, nameOf)}. ${text}`;
}

/** A membership change as a line on the board: "Ann removed Bob", "Carl joined".
 * `me`: this member's id (named "You"). A change found by reconciling the log with the
 * directory names no one who made it. */
export function membershipLine({ event, byName }: MemberChange, me: string): string {
  const p = event.payload;
  const name = p.memberId === me ? "You" : p.name;
  const by = "by" in p && p.by !== null ? (p.by === me ? "You" : (byName ?? "An owner")) : null;
  switch (event.type) {
    case "MemberJoined":
      return `${name} joined`;
    case "MemberLeft":
      return `${name} left`;
    case "MemberRemoved":
      return by ? `${by} removed ${name}` : `${name} ${name === "You" ? "are" : "is"} no longer a member`;
    case "MemberRoleChanged": {
      const role = event.payload.role === "owner" ? "an owner" : "a member";
      if (by) return `${by} made ${name === "You" ? "you" : name} ${role}`;
      return `${name} ${name === "You" ? "are" : "is"} now ${role}`;
    }
  }
}

/** What some codes mean when joining by an invite link. */
export const JOIN_ERRORS: Partial<Record<ErrorCode, string>> = {
  not_found: "This invite link is not valid (wrong household or code).",
};

/**
 * A thrown error (an ApiError from api.ts, a fetch failure, anything) as a sentence;
 * `context` words some codes for where it happened (e.g. JOIN_ERRORS).
 */
export function errorSentence(error: unknown, context: Partial<Record<ErrorCode, string>> = {}): string {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    const status = "status" in error && typeof error.status === "number" ? error.status : null;
    if (isError(error.code) && context[error.code]) return context[error.code] ?? sentence(error.code);
    if (isRefusal(error.code) || isError(error.code)) return sentence(error.code);
    if (status !== null && status >= 500) return ERRORS.internal;
  }
  if (error instanceof TypeError) return ERRORS.network;
  return sentence("");
}

/** "2 × Milk, 1 × Bread": a recorded line's own name, else the catalog's (`nameOf`), else
 * the sku. */
export function linesText(lines: readonly { sku: string; quantity: number; name?: string }[], nameOf: NameOf = () => null): string {
  return lines.map((l) => `${l.quantity} × ${l.name ?? nameOf(l.sku) ?? l.sku}`).join(", ");
}

/** Who did something to an order, in words: "you", a member's name, or the shop (the
 * system or the fulfilment process). */
export function actorName(actor: Actor, me: string, nameOf: (id: string) => string): string {
  switch (actor.kind) {
    case "member":
      return actor.id === me ? "you" : nameOf(actor.id);
    case "process":
    case "system":
      return "the shop";
  }
}
