import type { OrderStatus } from "./generated";

export const money = (cents: number) => `€${(cents / 100).toFixed(2)}`;

/** The time zone times are shown and picked in: the device's (households have none yet). */
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
 * A time as people say it, relative to `now` in `timeZone`: "today 18:30",
 * "tomorrow 08:00", "yesterday 21:15", "Fri 4 Dec 09:00" (within a week either way),
 * else "4 Dec 09:00". Never seconds.
 */
export function when(iso: string | null, now: Date = new Date(), timeZone: string = localTimeZone(), locale = "en-GB"): string {
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

/** A time of day only ("18:30"), for steps of one order that happen close together. */
export function clock(iso: string | null, timeZone: string = localTimeZone(), locale = "en-GB"): string {
  if (!iso) return "";
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : zoned(at, timeZone, locale).time;
}

/** `<input type="datetime-local">`'s value ("2026-12-01T18:30") for a moment, in the device's zone. */
export function toLocalInput(at: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
}

/** The moment an `<input type="datetime-local">` value names, in the device's zone (null: not a time). */
export function fromLocalInput(value: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(value);
  if (!m) return null;
  const [, y, mo, d, h, mi] = m.map(Number) as [number, number, number, number, number, number];
  const at = new Date(y, mo - 1, d, h, mi);
  return Number.isNaN(at.getTime()) ? null : at;
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
