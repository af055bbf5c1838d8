import type { OrderStatus } from "./generated";

export const money = (cents: number) => `€${(cents / 100).toFixed(2)}`;

/** The device's time zone: what a new household starts with (its creator's). Times are
 * shown and picked in the household's zone, never this one. */
export const localTimeZone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone;

type Zoned = { day: number; time: string; weekday: string; date: string };

function zoned(at: Date, timeZone: string, locale: string): Zoned {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(at);
  const part = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  // Days since the epoch of the calendar date in the zone: differences are whole days.
  const day = Math.round(Date.UTC(part("year"), part("month") - 1, part("day")) / 86_400_000);
  return {
    day,
    time: new Intl.DateTimeFormat(locale, { timeZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(at),
    weekday: new Intl.DateTimeFormat(locale, { timeZone, weekday: "short" }).format(at),
    date: new Intl.DateTimeFormat(locale, { timeZone, day: "numeric", month: "short" }).format(at),
  };
}

/**
 * A time as people say it, in the household's `timeZone`, relative to `now`: "today
 * 18:30", "tomorrow 08:00", "yesterday 21:15", "Fri 4 Dec 09:00" (within a week either
 * way), else "4 Dec 09:00". Never seconds.
 */
export function when(iso: string | null, timeZone: string, now: Date = new Date(), locale = "en-GB"): string {
  if (!iso) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const t = zoned(at, timeZone, locale);
  const days = t.day - zoned(now, timeZone, locale).day;
  if (days === 0) return `today ${t.time}`;
  if (days === 1) return `tomorrow ${t.time}`;
  if (days === -1) return `yesterday ${t.time}`;
  if (Math.abs(days) < 7) return `${t.weekday} ${t.date} ${t.time}`;
  return `${t.date} ${t.time}`;
}

/** A time of day only ("18:30") in `timeZone`, for steps of one order that happen close together. */
export function clock(iso: string | null, timeZone: string, locale = "en-GB"): string {
  if (!iso) return "";
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : zoned(at, timeZone, locale).time;
}

const wallFormats = new Map<string, Intl.DateTimeFormat>();

/** The wall clock of `timeZone` at the moment `ms`, as if it were UTC (ms, whole seconds). */
function wallClock(ms: number, timeZone: string): number {
  let format = wallFormats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    wallFormats.set(timeZone, format);
  }
  const parts = format.formatToParts(new Date(ms));
  const part = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return Date.UTC(part("year"), part("month") - 1, part("day"), part("hour"), part("minute"), part("second"));
}

/** How far `timeZone` is ahead of UTC at the moment `ms` (Berlin in winter: one hour). */
const offsetAt = (ms: number, timeZone: string) => wallClock(ms, timeZone) - Math.floor(ms / 1000) * 1000;

/** `<input type="datetime-local">`'s value ("2026-12-01T18:30") for a moment, in `timeZone`. */
export function toZonedInput(at: Date, timeZone: string): string {
  return new Date(wallClock(at.getTime(), timeZone)).toISOString().slice(0, 16);
}

/**
 * The moment an `<input type="datetime-local">` value names in `timeZone` (null: not a
 * time). A time the clocks skip (spring forward: 02:30 in Berlin on the last Sunday of
 * March) is read with the offset before the change, so it lands just after the gap (03:30);
 * a time that happens twice (autumn) is its first occurrence.
 */
export function fromZonedInput(value: string, timeZone: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(value);
  if (!m) return null;
  const [, y, mo, d, h, mi] = m.map(Number) as [number, number, number, number, number, number];
  const wall = Date.UTC(y, mo - 1, d, h, mi);
  if (Number.isNaN(wall) || new Date(wall).toISOString().slice(0, 16) !== value) return null;
  // The zone's offsets a day either side cover any change of its clocks on this day.
  const before = wall - offsetAt(wall - 86_400_000, timeZone);
  const after = wall - offsetAt(wall + 86_400_000, timeZone);
  const fits = [before, after].filter((ms) => wallClock(ms, timeZone) === wall).sort((a, b) => a - b);
  return new Date(fits[0] ?? before);
}

/** Whether `timeZone` is a zone this browser knows (an IANA name). */
export function knownTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone });
    return true;
  } catch {
    return false;
  }
}

export const STATUS_LABEL: Record<OrderStatus, string> = {
  placed: "Placed",
  stockReserved: "Stock reserved",
  paymentCaptured: "Paid",
  confirmed: "Confirmed",
  ready: "Ready",
  completed: "Collected",
  rejected: "Rejected",
  cancelled: "Cancelled",
};

/** The happy path, in order. */
export const STEPS: OrderStatus[] = ["placed", "stockReserved", "paymentCaptured", "confirmed", "ready", "completed"];

/**
 * The steps to show for an order: the happy path while it is open (reached ones done, the
 * rest to come); for a closed one (cancelled, rejected) only what happened, then how it
 * ended. "Collected" shows once reached.
 */
export function timelineSteps(status: OrderStatus, reached: ReadonlySet<OrderStatus>): { status: OrderStatus; done: boolean; end: boolean }[] {
  const ended = status === "rejected" || status === "cancelled";
  const path = STEPS.filter((s) => (ended ? reached.has(s) : s !== "completed" || reached.has("completed")));
  const steps = path.map((s) => ({ status: s, done: reached.has(s), end: false }));
  return ended ? [...steps, { status, done: true, end: true }] : steps;
}
