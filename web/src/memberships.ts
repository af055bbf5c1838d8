// The households this browser belongs to (each with its member token), in localStorage.
import type { Household, Membership } from "./generated";

const KEY = "hearth:memberships";

export function loadMemberships(): Membership[] {
  try {
    const raw = localStorage.getItem(KEY);
    const parsed: unknown = raw ? JSON.parse(raw) : [];
    return Array.isArray(parsed) ? (parsed as Membership[]) : [];
  } catch {
    return [];
  }
}

export function saveMembership(m: Membership): void {
  const rest = loadMemberships().filter((x) => x.household.id !== m.household.id);
  localStorage.setItem(KEY, JSON.stringify([m, ...rest]));
}

export function findMembership(householdId: string): Membership | undefined {
  return loadMemberships().find((m) => m.household.id === householdId);
}

export function removeMembership(householdId: string): void {
  localStorage.setItem(KEY, JSON.stringify(loadMemberships().filter((m) => m.household.id !== householdId)));
}

/** Keeps what the server says the household is now (its time zone may have changed). */
export function updateHousehold(household: Household): void {
  localStorage.setItem(
    KEY,
    JSON.stringify(loadMemberships().map((m) => (m.household.id === household.id ? { ...m, household } : m))),
  );
}
