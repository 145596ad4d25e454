#!/usr/bin/env python3
"""Plots results.csv of benches/throughput.sh as an SVG: calls/s and p99 against connections.

    python3 benches/plot.py RESULTS.csv [RSA_BOUND] > plot.svg

Two panels side by side (throughput with the 0.7 x RSA target line when the bound is given;
p99 latency with the 40 ms target line), log scale of connections. No third-party module.
"""
import csv
import math
import sys

rows = list(csv.DictReader(open(sys.argv[1])))
bound = float(sys.argv[2]) if len(sys.argv) > 2 else None
conns = [int(r["connections"]) for r in rows]
rate = [float(r["calls_per_s"]) for r in rows]
p99 = [float(r["p99_ms"]) for r in rows]

W, H, M = 420, 300, 55
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" '
       'font-family="sans-serif" font-size="12">',
       f'<rect width="{2 * W}" height="{H}" fill="white"/>']


def panel(x0, title, ys, unit, target, target_label):
    top = max(ys + ([target] if target else [])) * 1.15
    lx = [math.log2(c) for c in conns]
    xmin, xmax = min(lx), max(lx) or 1
    sx = lambda v: x0 + M + (v - xmin) / max(xmax - xmin, 1e-9) * (W - 2 * M)
    sy = lambda v: H - M + 10 - v / top * (H - 2 * M)
    out.append(f'<text x="{x0 + W / 2}" y="20" text-anchor="middle" font-weight="bold">{title}</text>')
    out.append(f'<line x1="{x0 + M}" y1="{H - M + 10}" x2="{x0 + W - M}" y2="{H - M + 10}" stroke="black"/>')
    out.append(f'<line x1="{x0 + M}" y1="{M - 10}" x2="{x0 + M}" y2="{H - M + 10}" stroke="black"/>')
    for c, v in zip(conns, lx):
        out.append(f'<text x="{sx(v)}" y="{H - M + 26}" text-anchor="middle">{c}</text>')
    out.append(f'<text x="{x0 + W / 2}" y="{H - 8}" text-anchor="middle">connections</text>')
    for i in range(5):
        v = top * i / 4
        out.append(f'<text x="{x0 + M - 6}" y="{sy(v) + 4}" text-anchor="end">{v:.0f}</text>')
    out.append(f'<text x="{x0 + 14}" y="{H / 2}" transform="rotate(-90 {x0 + 14} {H / 2})" '
               f'text-anchor="middle">{unit}</text>')
    if target:
        out.append(f'<line x1="{x0 + M}" y1="{sy(target)}" x2="{x0 + W - M}" y2="{sy(target)}" '
                   'stroke="#c33" stroke-dasharray="5,4"/>')
        out.append(f'<text x="{x0 + W - M}" y="{sy(target) - 5}" text-anchor="end" fill="#c33">{target_label}</text>')
    pts = " ".join(f"{sx(v)},{sy(y)}" for v, y in zip(lx, ys))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f5fa8" stroke-width="2"/>')
    for v, y in zip(lx, ys):
        out.append(f'<circle cx="{sx(v)}" cy="{sy(y)}" r="3" fill="#1f5fa8"/>')


panel(0, "checkCardEligibility throughput", rate, "calls/s",
      0.7 * bound if bound else None, "0.7 x RSA bound" if bound else "")
panel(W, "checkCardEligibility p99 latency", p99, "ms", 40, "target 40 ms")
out.append("</svg>")
print("\n".join(out))
