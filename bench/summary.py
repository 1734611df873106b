#!/usr/bin/env python3
"""Turns bench/run's results.tsv into ONE markdown table (stdout) and a JSON file.

Rows are workloads; per tool the median over repetitions of time, wire bytes (both directions,
headers included), peak RSS of the busiest process and CPU seconds of all its processes. The
floor is the same bytes copied locally and made durable (what the disk allows); rsync --fsync is
rsync made as durable as Ferry."""
import csv
import json
import statistics
import sys
from collections import defaultdict

TOOLS = ["floor", "ferry", "syncthing", "rsync", "rsyncfs"]
# Tools in the wire / RSS / CPU columns (the floor sends nothing; its CPU is in the raw values).
SIDE = ["ferry", "syncthing", "rsync", "rsyncfs"]
ROWS = [
    ("W1", "1 GiB new file", "<= 3.0 s"),
    ("W2", "10k x 10 KiB files", "<= 3.0 s"),
    ("W3", "1-byte overwrite, middle", "<= 2.0 s, <= 256 KiB"),
    ("W4", "1-byte insert at start", "<= 2.0 s, <= 256 KiB"),
    ("W5", "new small file, p50 (p95)", "p50 <= 150 ms, p95 <= 300 ms"),
    ("W6", "rename the 1 GiB file", "<= 1.0 s, <= 64 KiB"),
    ("W7", "100k x 1 KiB files", "<= 30 s"),
    ("W7r", "restart both, no change", "<= 2 s"),
    ("idle", "CPU over idle period, W7 tree", "< 0.5 %"),
    ("W8i", "1M files: first index, one node", "<= 60 s, RSS < 250 MiB"),
    ("W8r", "1M files: restart to idle", "<= 4 s"),
    ("W8s", "1M files: one status call", "O(1)"),
    ("W8", "1M files: full sync to a second node", "<= 6 min, RSS < 300 MiB"),
    ("W8l", "new small file inside W8, p50 (p95)", "p95 <= 150 ms"),
    ("W9", "4 GiB: zero runs + repeated 1 MiB", "<= 16 MiB on the wire"),
    ("W10", "10-device mesh: W1's file to 9", "<= 3x W1, origin sends <= 3x"),
    ("W10s", "10-device mesh: 1,000 small files to 9", "origin sends <= 3x"),
]
LATENCY = ("W5", "W8l")


def load(paths):
    data = defaultdict(list)  # (tool, workload, metric) -> [values]
    for path in paths:
        for r in csv.DictReader(open(path), delimiter="\t"):
            data[(r["tool"], r["workload"], r["metric"])].append(r["value"])
    return data


def nums(vals):
    out = []
    for v in vals:
        try:
            out.append(float(v))
        except ValueError:
            pass
    return out


def med(data, t, w, m):
    n = nums(data.get((t, w, m), []))
    return statistics.median(n) if n else None


def pct(data, t, w, m, q):
    n = sorted(nums(data.get((t, w, m), [])))
    if not n:
        return None
    k = min(len(n) - 1, max(0, int(round(q * (len(n) - 1)))))
    return n[k]


def fmt_s(x):
    if x is None:
        return "-"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def fmt_b(x):
    if x is None:
        return "-"
    for unit, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if x >= f:
            return f"{x / f:.1f} {unit}"
    return f"{x:.0f} B"


def fmt_n(x, spec):
    return "-" if x is None else format(x, spec)


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def failures(data, t, w):
    bad = [v for v in data.get((t, w, "time_s"), []) + data.get((t, w, "latency_s"), []) if not nums([v])]
    return f" ({', '.join(sorted(set(bad)))})" if bad else ""


def main():
    # usage: summary.py RESULTS.tsv [MORE.tsv ...] OUT.json (several runs' rows are pooled)
    data = load(sys.argv[1:-1])
    out = {"medians": {}, "raw": {}}
    for (t, w, m), vals in data.items():
        out["raw"].setdefault(t, {}).setdefault(w, {})[m] = vals
    print("| workload | target (Ferry) | floor | Ferry | Syncthing | rsync | rsync --fsync | Ferry/floor "
          "| Ferry/Syncthing | Ferry/rsync --fsync | wire bytes F / S / r / rf | peak RSS MiB F / S / r / rf "
          "| CPU s F / S / r / rf |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for w, what, target in ROWS:
        cells, times = [], {}
        for t in TOOLS:
            if w in LATENCY:
                p50, p95 = med(data, t, w, "latency_s"), pct(data, t, w, "latency_s", 0.95)
                times[t] = p50
                cells.append("-" if p50 is None else f"{fmt_s(p50)} ({fmt_s(p95)})" + failures(data, t, w))
                out["medians"].setdefault(t, {})[w] = {"p50_s": p50, "p95_s": p95}
            elif w == "idle":
                v = med(data, t, w, "cpu_pct")
                times[t] = v
                cells.append("-" if v is None else f"{v:.2f} %")
                out["medians"].setdefault(t, {})[w] = {"cpu_pct": v}
            else:
                v = med(data, t, w, "time_s")
                times[t] = v
                cells.append(fmt_s(v) + failures(data, t, w))
                out["medians"].setdefault(t, {})[w] = {
                    m: med(data, t, w, m) for m in ("time_s", "wire_bytes", "rss_mib", "cpu_s")
                }
        wire = " / ".join(fmt_b(med(data, t, w, "wire_bytes")) for t in SIDE)
        rss = " / ".join(fmt_n(med(data, t, w, "rss_mib"), ".0f") for t in SIDE)
        cpu = " / ".join(fmt_n(med(data, t, w, "cpu_s"), ".2f") for t in SIDE)
        print(f"| {w} {what} | {target} | " + " | ".join(cells)
              + f" | {ratio(times['ferry'], times['floor'])} | {ratio(times['ferry'], times['syncthing'])}"
              + f" | {ratio(times['ferry'], times['rsyncfs'])} | {wire} | {rss} | {cpu} |")
    notes = []
    home = med(data, "ferry", "W8i", "home_mib")
    if home is not None:
        notes.append(f"W8i: Ferry's home (index) holds {home:.0f} MiB.")
    alloc = [f"{t} {a:.0f} MiB" for t in TOOLS if (a := med(data, t, "W9", "alloc_mib")) is not None]
    if alloc:
        notes.append("W9: allocated on the receiver's disk: " + ", ".join(alloc) + ".")
    for w in ("W10", "W10s"):
        o, x = med(data, "ferry", w, "origin_bytes"), med(data, "ferry", w, "origin_x")
        if o is not None and x is not None:
            notes.append(f"{w}: the origin sent {fmt_b(o)}, {x:.2f}x the content.")
    w1, w10 = med(data, "ferry", "W1", "time_s"), med(data, "ferry", "W10", "time_s")
    if w1 and w10:
        notes.append(f"W10 took {w10 / w1:.2f}x Ferry's W1.")
    if notes:
        print("\n" + " ".join(notes))
    json.dump(out, open(sys.argv[-1], "w"), indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
