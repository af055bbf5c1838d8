// The local cache: the board, its seq and the commands (pending ones included) survive
// a reload. One localStorage entry per household.
import type { HouseholdView } from "./generated";
import type { CommandEntry } from "./state";

/** `olderOrders`: orders placed before the first in `view` (absent in older caches: 0). */
export type Cached = { version: 1; view: HouseholdView; commands: CommandEntry[]; olderOrders?: number };

const key = (householdId: string) => `hearth:household:${householdId}`;

export function loadCache(householdId: string, storage: Storage | undefined = globalThis.localStorage): Cached | null {
  try {
    const raw = storage?.getItem(key(householdId));
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Partial<Cached> | null;
    if (!parsed || parsed.version !== 1 || !parsed.view || !Array.isArray(parsed.commands)) return null;
    if (typeof parsed.view.seq !== "number" || !Array.isArray(parsed.view.orders)) return null;
    const olderOrders = typeof parsed.olderOrders === "number" ? parsed.olderOrders : 0;
    return { version: 1, view: parsed.view, commands: parsed.commands, olderOrders };
  } catch {
    return null;
  }
}

export function saveCache(
  householdId: string,
  view: HouseholdView,
  commands: CommandEntry[],
  storage: Storage | undefined = globalThis.localStorage,
  olderOrders = 0,
): void {
  try {
    const value: Cached = { version: 1, view, commands, olderOrders };
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
