#!/usr/bin/env python3
"""Latency-vs-rate plot of workload b of one bench/run.sh run: p50 and p99
command-to-event latency at the other members against the offered command rate."""
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out = pathlib.Path(sys.argv[1])
png = sys.argv[2]
colors = {"hearth-sqlite": "tab:red", "hearth-pg": "tab:blue", "hearth-memory": "tab:purple",
          "bare": "tab:green", "partykit": "tab:orange"}
fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
for s, color in colors.items():
    p = out / f"b-{s}.json"
    if not p.exists():
        continue
    steps = json.loads(p.read_text())["steps"]
    rates = [st["rate"] for st in steps]
    ax.plot(rates, [st["event_latency"]["p99_ms"] for st in steps], "-o", color=color, label=f"{s} p99")
    ax.plot(rates, [st["event_latency"]["p50_ms"] for st in steps], ":", color=color, label=f"{s} p50")
ax.axhline(50, color="grey", lw=0.8, ls="--")
ax.text(ax.get_xlim()[0] if False else 55, 55, "50 ms bound", color="grey", fontsize=8)
ax.axhline(5, color="grey", lw=0.8, ls=":")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("offered commands/s (100 households x 10 members, each event to 10 sockets)")
ax.set_ylabel("command-to-event latency at other members (ms)")
ax.set_title(f"Hearth vs baselines, one run ({out.name}), 2 cores shared by client and server")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()
fig.savefig(png)
