import { describe, expect, it } from "vitest";
import { clock, fromZonedInput, knownTimeZone, timelineSteps, toZonedInput, when } from "./format";

const now = new Date("2026-12-01T17:00:00Z"); // 18:00 in Berlin, Tue 1 Dec
const berlin = (iso: string) => when(iso, "Europe/Berlin", now);

describe("times people can read", () => {
  it("says today, tomorrow, yesterday, a weekday within a week, else a date; never seconds", () => {
    expect(berlin("2026-12-01T17:30:45Z")).toBe("today 18:30");
    expect(berlin("2026-12-02T07:00:00Z")).toBe("tomorrow 08:00");
    expect(berlin("2026-11-30T20:15:00Z")).toBe("yesterday 21:15");
    expect(berlin("2026-12-04T08:00:00Z")).toBe("Fri 4 Dec 09:00");
    expect(berlin("2026-12-20T08:00:00Z")).toBe("20 Dec 09:00");
    expect(berlin("not a time")).toBe("");
    expect(when(null, "Europe/Berlin")).toBe("");
  });

  it("counts days and hours in the household's zone, whatever the device's", () => {
    // 23:30 UTC on the 1st is already the 2nd in Berlin, still the 1st in New York.
    expect(berlin("2026-12-01T23:30:00Z")).toBe("tomorrow 00:30");
    expect(when("2026-12-01T23:30:00Z", "America/New_York", now)).toBe("today 18:30");
    // Far east: 17:00 UTC is 06:00 tomorrow in Auckland (UTC+13 in summer), and "now" is
    // already the 2nd there, so the same moment is "today".
    expect(when("2026-12-01T17:00:00Z", "Pacific/Auckland", now)).toBe("today 06:00");
    expect(when("2026-12-01T17:00:00Z", "Asia/Kolkata", now)).toBe("today 22:30");
    expect(clock("2026-12-01T17:05:59Z", "Asia/Kolkata")).toBe("22:35");
  });

  it("follows the clock changes: the same UTC hour reads an hour apart across DST", () => {
    // Berlin: CET (+1) until 29 Mar 2026 01:00 UTC, then CEST (+2).
    const march = new Date("2026-03-28T12:00:00Z");
    expect(when("2026-03-28T07:00:00Z", "Europe/Berlin", march)).toBe("today 08:00");
    expect(when("2026-03-29T07:00:00Z", "Europe/Berlin", march)).toBe("tomorrow 09:00");
    // New York changes on another day (8 Mar 2026): 13:00 UTC is 08:00 then 09:00.
    const nyMarch = new Date("2026-03-07T15:00:00Z");
    expect(when("2026-03-07T13:00:00Z", "America/New_York", nyMarch)).toBe("today 08:00");
    expect(when("2026-03-08T13:00:00Z", "America/New_York", nyMarch)).toBe("tomorrow 09:00");
    // A day of 23 hours is still one day: "tomorrow" right after midnight.
    expect(when("2026-03-28T23:30:00Z", "Europe/Berlin", march)).toBe("tomorrow 00:30");
  });
});

describe("the picker, in the household's zone", () => {
  it("reads and writes datetime-local values in the given zone, not the device's", () => {
    const at = fromZonedInput("2026-12-02T08:05", "Europe/Berlin");
    expect(at?.toISOString()).toBe("2026-12-02T07:05:00.000Z");
    expect(at && toZonedInput(at, "Europe/Berlin")).toBe("2026-12-02T08:05");
    expect(at && toZonedInput(at, "America/New_York")).toBe("2026-12-02T02:05");
    expect(fromZonedInput("2026-12-02T08:05", "America/New_York")?.toISOString()).toBe("2026-12-02T13:05:00.000Z");
    expect(fromZonedInput("2026-12-02T08:05", "Asia/Kolkata")?.toISOString()).toBe("2026-12-02T02:35:00.000Z");
    expect(fromZonedInput("tomorrow", "UTC")).toBeNull();
    expect(fromZonedInput("2026-02-30T10:00", "UTC")).toBeNull();
  });

  it("round-trips times spread over a year (every 9 h 15 min) in zones with and without DST", () => {
    for (const zone of ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]) {
      for (let ms = Date.UTC(2026, 0, 1); ms < Date.UTC(2027, 0, 1); ms += 15 * 60_000 * 37) {
        const at = new Date(ms - (ms % 60_000));
        const input = toZonedInput(at, zone);
        const back = fromZonedInput(input, zone);
        // A wall time that happens twice reads as its first occurrence.
        expect(back && back.getTime() <= at.getTime() && toZonedInput(back, zone) === input, `${zone} ${at.toISOString()}`).toBe(true);
      }
    }
  });

  it("reads a time the clocks skip just after the gap, and a doubled one as its first", () => {
    // Berlin springs forward at 02:00 local on 29 Mar 2026: 02:30 does not exist.
    const skipped = fromZonedInput("2026-03-29T02:30", "Europe/Berlin");
    expect(skipped?.toISOString()).toBe("2026-03-29T01:30:00.000Z");
    expect(skipped && toZonedInput(skipped, "Europe/Berlin")).toBe("2026-03-29T03:30");
    // Berlin falls back at 03:00 local on 25 Oct 2026: 02:30 happens twice (CEST, then CET).
    expect(fromZonedInput("2026-10-25T02:30", "Europe/Berlin")?.toISOString()).toBe("2026-10-25T00:30:00.000Z");
    // New York: 02:30 skipped on 8 Mar, 01:30 twice on 1 Nov.
    expect(fromZonedInput("2026-03-08T02:30", "America/New_York")?.toISOString()).toBe("2026-03-08T07:30:00.000Z");
    expect(fromZonedInput("2026-11-01T01:30", "America/New_York")?.toISOString()).toBe("2026-11-01T05:30:00.000Z");
  });

  it("knows the zones the browser knows", () => {
    expect(knownTimeZone("Europe/Berlin")).toBe(true);
    expect(knownTimeZone("Mars/Olympus")).toBe(false);
  });
});

describe("timelines", () => {
  it("shows the steps that happened: an open order its path, a closed one only what it reached and how it ended", () => {
    const names = (s: ReturnType<typeof timelineSteps>) => s.map((x) => `${x.status}${x.done ? "+" : "-"}${x.end ? "!" : ""}`);
    expect(names(timelineSteps("stockReserved", new Set(["placed", "stockReserved"])))).toEqual([
      "placed+",
      "stockReserved+",
      "paymentCaptured-",
      "confirmed-",
      "ready-",
    ]);
    expect(names(timelineSteps("cancelled", new Set(["placed", "stockReserved", "cancelled"])))).toEqual(["placed+", "stockReserved+", "cancelled+!"]);
    expect(names(timelineSteps("rejected", new Set(["placed", "rejected"])))).toEqual(["placed+", "rejected+!"]);
    expect(names(timelineSteps("completed", new Set(["placed", "stockReserved", "paymentCaptured", "confirmed", "ready", "completed"])))).toContain("completed+");
  });
});
