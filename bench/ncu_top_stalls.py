"""Where a kernel's warps wait, per SASS instruction, from an Nsight Compute source page.

    ncu --section SourceCounters -k regex:w4a16 --launch-skip 2 --launch-count 1 -o /tmp/rep \\
        python3 bench/fp4_profile.py
    ncu --import /tmp/rep.ncu-rep --page source --csv --print-source sass > /tmp/src.csv
    python3 bench/ncu_top_stalls.py /tmp/src.csv [--top 40]

Prints the share of each stall reason over all warp-stall samples, then the instructions
with the most samples (with their share of `stall_long_sb`, which is where TMA / mbarrier
waits and global loads show up) and the few instructions before each, so a spin loop on
`SYNCS.PHASECHK` (an mbarrier wait) reads as such.  `bash bench/gpu_run.sh profile` runs
all three steps for FP4Linear at M = 1.
"""

from __future__ import annotations

import argparse
import csv


def _num(x: str) -> float:
    try:
        return float(x.replace(",", ""))
    except ValueError:
        return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    rows = list(csv.reader(open(a.csv)))
    head = next(i for i, r in enumerate(rows) if "Source" in r)
    hdr, data = rows[head], rows[head + 1:]
    src, samples = hdr.index("Source"), hdr.index("Warp Stall Sampling (All Samples)")
    total = sum(_num(r[samples]) for r in data) or 1.0
    reasons = [i for i, h in enumerate(hdr) if h.startswith("stall_") and "Not Issued" not in h]
    shares = sorted(((sum(_num(r[i]) for r in data) / total, hdr[i]) for i in reasons), reverse=True)
    print("stall reasons (share of all samples): " + ", ".join(f"{n} {s:.1%}" for s, n in shares if s >= 0.005))
    long_sb = hdr.index("stall_long_sb")
    ranked = sorted(range(len(data)), key=lambda i: -_num(data[i][samples]))[:a.top]
    for i in ranked:
        print(f"\n{_num(data[i][samples]) / total:6.1%} (long scoreboard {_num(data[i][long_sb]) / total:.1%})")
        for j in range(max(0, i - 3), i + 1):
            print(f"    {'>' if j == i else ' '} {data[j][src].strip()[:110]}")


if __name__ == "__main__":
    main()
