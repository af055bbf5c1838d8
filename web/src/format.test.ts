import { describe, expect, it } from "vitest";
import { fromLocalInput, timelineSteps, toLocalInput, when } from "./format";

const now = new Date("2026-12-01T17:00:00Z"); // 18:00 in Berlin, Tue 1 Dec
const berlin = (iso: string) => when(iso, now, "Europe/Berlin");

describe("times people can read", () => {
  it("says today, tomorrow, yesterday, a weekday within a week, else a date; never seconds", () => {
    expect(berlin("2026-12-01T17:30:45Z")).toBe("today 18:30");
    expect(berlin("2026-12-02T07:00:00Z")).toBe("tomorrow 08:00");
    expect(berlin("2026-11-30T20:15:00Z")).toBe("yesterday 21:15");
    expect(berlin("2026-12-04T08:00:00Z")).toBe("Fri 4 Dec 09:00");
    expect(berlin("2026-12-20T08:00:00Z")).toBe("20 Dec 09:00");
    expect(berlin("not a time")).toBe("");
    expect(when(null)).toBe("");
  });

  it("counts days in the given time zone, not in UTC", () => {
    // 23:30 UTC on the 1st is already the 2nd in Berlin, still the 1st in New York.
    expect(berlin("2026-12-01T23:30:00Z")).toBe("tomorrow 00:30");
    expect(when("2026-12-01T23:30:00Z", now, "America/New_York")).toBe("today 18:30");
  });

  it("reads and writes datetime-local values in the device's zone", () => {
    const at = fromLocalInput("2026-12-02T08:05");
    expect(at?.getHours()).toBe(8);
    expect(at && toLocalInput(at)).toBe("2026-12-02T08:05");
    expect(fromLocalInput("tomorrow")).toBeNull();
  });

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
