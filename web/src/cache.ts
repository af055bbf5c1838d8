// The local cache: the board, its seq and the commands (pending ones included) survive
// a reload. One localStorage entry per household.
import type { HouseholdView, Older } from "./generated";
import { NONE_OLDER } from "./state";
import type { CommandEntry } from "./state";

/**
 * `older`: how many items of each list came before the first in `view` (absent in older
 * caches, which kept only `olderOrders`).
 */
export type Cached = { version: 1; view: HouseholdView; commands: CommandEntry[]; older?: Older; olderOrders?: number };

/** Each count of `Older` from a cached value: a number, or 0. */
function olderOf(parsed: Partial<Cached>): Older {
  const from = (parsed.older ?? { olderOrders: parsed.olderOrders }) as Record<string, unknown>;
  const older: Record<string, number> = { ...NONE_OLDER };
  for (const key of Object.keys(NONE_OLDER)) {
    const value = from[key];
    if (typeof value === "number" && Number.isInteger(value) && value >= 0) older[key] = value;
  }
  return older as Older;
}

/** A view cached before orders said who cancelled (and why) and who collected them. */
function upgradeView(view: HouseholdView): HouseholdView {
  return { ...view, orders: view.orders.map((o) => ({ ...o, cancelReason: o.cancelReason ?? null, completedBy: o.completedBy ?? null })) };
}

/** A command kept from before orders named skus only: a PlaceOrder whose lines carried
 * names is sent as skus, quantities and the prices shown (the server refuses names). */
function upgradeCommand(entry: CommandEntry): CommandEntry {
  const command = entry.command;
  if (command.type !== "PlaceOrder") return entry;
  const lines = command.payload.lines.map(({ sku, quantity, unitPriceCents }) =>
    unitPriceCents === undefined ? { sku, quantity } : { sku, quantity, unitPriceCents },
  );
  return { ...entry, command: { ...command, payload: { ...command.payload, lines } } };
}

const key = (householdId: string) => `hearth:household:${householdId}`;

export function loadCache(householdId: string, storage: Storage | undefined = globalThis.localStorage): Cached | null {
  try {
    const raw = storage?.getItem(key(householdId));
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Partial<Cached> | null;
    if (!parsed || parsed.version !== 1 || !parsed.view || !Array.isArray(parsed.commands)) return null;
    if (typeof parsed.view.seq !== "number" || !Array.isArray(parsed.view.orders)) return null;
    return { version: 1, view: upgradeView(parsed.view), commands: parsed.commands.map(upgradeCommand), older: olderOf(parsed) };
  } catch {
    return null;
  }
}

export function saveCache(
  householdId: string,
  view: HouseholdView,
  commands: CommandEntry[],
  storage: Storage | undefined = globalThis.localStorage,
  older: Older = NONE_OLDER,
): void {
  try {
    const value: Cached = { version: 1, view, commands, older };
    storage?.setItem(key(householdId), JSON.stringify(value));
  } catch {
    // Full or unavailable storage: the cache is an optimisation, the server has the truth.
  }
}

export function clearCache(householdId: string, storage: Storage | undefined = globalThis.localStorage): void {
  try {
    storage?.removeItem(key(householdId));
  } catch {
    // ignore
  }
}
