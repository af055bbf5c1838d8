#!/usr/bin/env python3
"""Summary of one bench/run.sh run (Markdown on stdout): figures, baselines, ratios."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])


def load(name):
    p = out / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


SERVERS = ["hearth-sqlite", "hearth-pg", "hearth-memory", "bare", "partykit"]
f1 = lambda v: "-" if v is None else f"{v:,.1f}"
f0 = lambda v: "-" if v is None else f"{v:,.0f}"


def ratio(a, b):
    return "-" if not a or not b else f"{a / b:.2f}"


print(f"# Run {out.name}\n")
load_log = (out / "load.log").read_text() if (out / "load.log").exists() else ""
print("Load (uptime before/after each measurement):\n")
print("```\n" + load_log.strip() + "\n```\n")

print("## a: steady (households x 4, 1 command/s per member)\n")
print("| server | households | sent | acked/s | deliveries/s | ack p50/p99 ms | event p50/p99/max ms | gaps/dups/lost | errors | server RSS KiB before/connected/end |")
print("|---|---|---|---|---|---|---|---|---|---|")
for s in SERVERS:
    r = load(f"a-{s}")
    if not r or not r["steps"]:
        continue
    st = r["steps"][0]
    a, e = st["ack_latency"], st["event_latency"]
    print(f"| {s} | {r['households']} | {st['sent']} | {f0(st['acked_per_sec'])} | {f0(st['deliveries_per_sec'])} | "
          f"{a['p50_ms']:.2f} / {a['p99_ms']:.2f} | {e['p50_ms']:.2f} / {e['p99_ms']:.2f} / {e['max_ms']:.1f} | "
          f"{r['total_gaps']}/{r['total_duplicates']}/{r['lost_at_end']} | {st['errors'] or ''}{st['closed'] or ''} | "
          f"{r['server_rss_kib_before']}/{r['server_rss_kib_connected']}/{r['server_rss_kib_end']} |")

print("\n## b: 100 x 10 at rising rates (bound: p99 command-to-event <= 50 ms, all acked, no error, no loss)\n")
print("| server | capacity (commands/s) | acked/s there | deliveries/s there | p99 there ms | highest acked/s in any step | half capacity: event p50/p99 ms | gaps/dups/lost |")
print("|---|---|---|---|---|---|---|---|")
cap = {}
for s in SERVERS:
    r = load(f"b-{s}")
    if not r:
        continue
    c = r["capacity"]
    best = max((st["acked_per_sec"] for st in r["steps"]), default=None)
    h = load(f"half-{s}")
    hs = h["steps"][0]["event_latency"] if h and h["steps"] else None
    cap[s] = dict(c=c, best=best, half=hs)
    print(f"| {s} | {f0(c['rate']) if c else 'none'} | {f0(c['acked_per_sec']) if c else '-'} | "
          f"{f0(c['deliveries_per_sec']) if c else '-'} | {c['event_p99_ms']:.1f} |" if c else f"| {s} | none | - | - | - |", end="")
    half = "%.2f / %.2f" % (hs["p50_ms"], hs["p99_ms"]) if hs else "-"
    print(f" {f0(best)} | {half} | "
          f"{r['total_gaps']}/{r['total_duplicates']}/{r['lost_at_end']} |")
print()
for s in SERVERS:
    r = load(f"b-{s}")
    if not r:
        continue
    print(f"- {s} steps: " + ", ".join(
        f"{st['rate']:.0f}/s: acked {st['acked_per_sec']:.0f}/s p99 {st['event_latency']['p99_ms']:.1f} ms"
        + ("" if st["within_bound"] else " (out)") for st in r["steps"]))

print("\n## c: one slow consumer per household (never reads), against the same load without (c0)\n")


def rss(r):
    return "/".join(str(r.get(k)) for k in ["server_rss_kib_before", "server_rss_kib_connected",
                                             "server_rss_kib_end", "server_rss_kib_peak"])


print("| server | load | fast members: event p50 / p99 / max ms, without / with | deliveries/s without / with | "
      "fast loss (gaps/dups/lost) without / with | slow sockets: how they ended | server's slow-consumer closes | "
      "events a slow socket read before its end, min/median/max | server RSS KiB before/connected/end/peak, without / with |")
print("|---|---|---|---|---|---|---|---|---|")
for s in SERVERS:
    r = load(f"c-{s}")
    if not r or not r["steps"]:
        continue
    # Runs before c0 existed compared c with workload a.
    base, base_name = load(f"c0-{s}"), "c0"
    if not base:
        base, base_name = load(f"a-{s}"), "a"
    st = r["steps"][0]
    bst = base["steps"][0] if base and base["steps"] else None
    ev = lambda x: "%.2f / %.2f / %.1f" % (x["event_latency"]["p50_ms"], x["event_latency"]["p99_ms"],
                                           x["event_latency"]["max_ms"])
    loss = lambda x: (f"{x['total_gaps']}/{x['total_duplicates']}/{x['lost_at_end']}"
                      + "".join(f" {k}" for k in [x["steps"][0]["errors"], x["steps"][0]["closed"]] if k))
    sl = r["slow"]
    rb = sl.get("events_read_before_close")
    rb = f"{rb['min']}/{rb['median']}/{rb['max']} ({rb['count']} sockets)" if rb and rb["count"] else "-"
    closed = ", ".join(f"{k}: {v}" for k, v in sl["closed"].items())
    load_ = f"{r['households']} x {r['members']} + {r['slow_per_room']} slow, {f0(st['rate'])}/s, {st['secs']:.0f} s"
    print(f"| {s} | {load_} | {ev(bst) if bst else '-'} ({base_name}) / {ev(st)} | "
          f"{f0(bst['deliveries_per_sec']) if bst else '-'} / {f0(st['deliveries_per_sec'])} | "
          f"{loss(base) if base else '-'} / {loss(r)} | {closed} | {sl.get('server_slow_consumers_total', '-')} | {rb} | "
          f"{rss(base) if base else '-'} / {rss(r)} |")

print("\n## d: idle sockets\n")
print("| server | sockets | connect errors | server RSS KiB before / with sockets | KiB per socket |")
print("|---|---|---|---|---|")
for s in SERVERS:
    r = load(f"d-{s}")
    if not r:
        continue
    print(f"| {s} | {r['connections']} | {r['connect_errors']} | {r['server_rss_kib_before']} / {r['server_rss_kib_connected']} | {f1(r['rss_per_socket_kib'])} |")

pg = load("pgbench")
print("\n## Targets (ratios measured in this run)\n")
print("| target | measured | ratio | goal |")
print("|---|---|---|---|")
tps = pg["tps"] if pg else None
hp = cap.get("hearth-pg", {})
hp_cap = hp.get("c")
print(f"| durable commands/s with fan-out (hearth-pg) vs plain INSERT TPS ({pg['clients'] if pg else '-'} clients) | "
      f"{f0(hp_cap['acked_per_sec']) if hp_cap else '-'} at the 50 ms bound, {f0(hp.get('best'))} highest / {f0(tps)} TPS | "
      f"{ratio(hp_cap['acked_per_sec'] if hp_cap else None, tps)} (highest: {ratio(hp.get('best'), tps)}) | >= 1.0 |")
for s in ["hearth-sqlite", "hearth-pg", "hearth-memory"]:
    h = cap.get(s, {}).get("half")
    if h:
        print(f"| p99 command-to-event at half capacity, {s} | {h['p99_ms']:.2f} ms | - | <= 5 ms |")
for base in ["bare", "partykit"]:
    b = cap.get(base, {}).get("c")
    for s in ["hearth-sqlite", "hearth-pg", "hearth-memory"]:
        h = cap.get(s, {}).get("c")
        goal = ">= 0.8" if base == "bare" else ">= 1.0"
        print(f"| deliveries/s at capacity, {s} vs {base} | {f0(h['deliveries_per_sec']) if h else '-'} vs {f0(b['deliveries_per_sec']) if b else '-'} | "
              f"{ratio(h['deliveries_per_sec'] if h else None, b['deliveries_per_sec'] if b else None)} | {goal} |")
d = load("d-hearth-sqlite")
if d:
    print(f"| memory per socket, hearth-sqlite, {d['connections']} idle sockets | {f1(d['rss_per_socket_kib'])} KiB | - | <= 20 KiB at 20,000 |")
