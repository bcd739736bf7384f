"""Hand-built SVG charts for the report: no plotting library, no script, no network.

Five chart shapes (scatter with error bars, lines, vertical markers, bands, heatmap) are all
the report needs; writing them directly keeps the report a few hundred kB, lets every mark
carry a <title> tooltip, and adds no dependency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

# Okabe-Ito: distinguishable with every common colour-vision deficiency
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass
class Axis:
    lo: float
    hi: float
    log: bool = False

    def __post_init__(self) -> None:
        if self.log:
            self.lo, self.hi = max(self.lo, 1e-12), max(self.hi, self.lo * 10, 1e-11)
        if self.hi <= self.lo:
            self.hi = self.lo + (abs(self.lo) or 1.0)

    def frac(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo)
            return (math.log10(v) - math.log10(self.lo)) / (
                math.log10(self.hi) - math.log10(self.lo)
            )
        return (v - self.lo) / (self.hi - self.lo)

    def ticks(self, fmt) -> list[tuple[float, str]]:
        if self.log:
            a, b = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            stride = max(1, (b - a) // 6)
            mult = (1, 2, 5) if b - a <= 2 else (1,)  # short ranges need 1-2-5 ticks
            vals = [m * 10.0**e for e in range(a, b + 1, stride) for m in mult]
        else:
            raw = (self.hi - self.lo) / 5
            mag = 10 ** math.floor(math.log10(raw))
            step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
            first = math.ceil(self.lo / step) * step
            vals = [first + i * step for i in range(int((self.hi - first) / step + 1e-9) + 1)]
        return [(v, fmt(v)) for v in vals if self.lo - 1e-12 <= v <= self.hi + 1e-12]


@dataclass
class Plot:
    """An x/y chart; add marks, then `render()` returns one <svg> element."""

    title: str
    x: Axis
    y: Axis
    xlabel: str = ""
    ylabel: str = ""
    xfmt: object = field(default=lambda v: f"{v:g}")
    yfmt: object = field(default=lambda v: f"{v:g}")
    width: int = 600
    height: int = 340
    marks: list[str] = field(default_factory=list)
    legend: list[tuple[str, str, bool]] = field(default_factory=list)
    margin: tuple[int, int, int, int] = (36, 20, 48, 64)  # top, right, bottom, left (px)

    def px(self, x: float, y: float) -> tuple[float, float]:
        t, r, b, left = self.margin
        return (
            left + self.x.frac(x) * (self.width - left - r),
            self.height - b - self.y.frac(y) * (self.height - t - b),
        )

    def line(self, xs, ys, i: int, label: str, dash: bool = False) -> None:
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in (self.px(x, y) for x, y in zip(xs, ys)))
        style = ' stroke-dasharray="6 4"' if dash else ""
        self.marks.append(
            f'<polyline class="series" points="{pts}" fill="none" stroke="{color(i)}" stroke-width="2"{style}><title>{escape(label)}</title></polyline>'
        )
        self.legend.append((label, color(i), dash))

    def band(self, xs, lo, hi, i: int) -> None:
        up = [self.px(x, y) for x, y in zip(xs, hi)]
        down = [self.px(x, y) for x, y in zip(reversed(xs), reversed(lo))]
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in up + down)
        self.marks.append(f'<polygon points="{pts}" fill="{color(i)}" opacity="0.15"/>')

    def point(
        self, x: float, y: float, i: int, label: str, tip: str, err: tuple | None = None
    ) -> None:
        cx, cy = self.px(x, y)
        if err is not None:
            _, lo = self.px(x, err[0])
            _, hi = self.px(x, err[1])
            self.marks.append(
                f'<line x1="{cx:.1f}" y1="{lo:.1f}" x2="{cx:.1f}" y2="{hi:.1f}" stroke="{color(i)}" stroke-width="1.5"/>'
            )
        self.marks.append(
            f'<circle class="series" cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{color(i)}"><title>{escape(tip)}</title></circle>'
            f'<text x="{cx + 8:.1f}" y="{cy - 6:.1f}" class="lbl">{escape(label)}</text>'
        )

    def dots(self, xs, y: float, i: int, tip: str) -> None:
        for k, x in enumerate(xs):
            cx, cy = self.px(x, y)
            jitter = ((k * 7919) % 13 - 6) * 1.2  # deterministic spread so dots do not overlap
            self.marks.append(
                f'<circle cx="{cx:.1f}" cy="{cy + jitter:.1f}" r="2.2" fill="{color(i)}" opacity="0.55"/>'
            )
        self.marks[-1] = self.marks[-1].replace("/>", f"><title>{escape(tip)}</title></circle>")

    def tick(self, x: float, y: float, i: int, height: float, tip: str) -> None:
        cx, cy = self.px(x, y)
        self.marks.append(
            f'<line x1="{cx:.1f}" y1="{cy - height:.1f}" x2="{cx:.1f}" y2="{cy + height:.1f}" stroke="{color(i)}" stroke-width="3"><title>{escape(tip)}</title></line>'
        )

    def vline(self, x: float, text: str) -> None:
        (cx, top), (_, bottom) = self.px(x, self.y.hi), self.px(x, self.y.lo)
        self.marks.append(
            f'<line x1="{cx:.1f}" y1="{top:.1f}" x2="{cx:.1f}" y2="{bottom:.1f}" stroke="#555" stroke-dasharray="3 3"/>'
            f'<text x="{cx + 4:.1f}" y="{bottom - 6:.1f}" class="lbl">{escape(text)}</text>'
        )

    def hline(self, y: float, text: str) -> None:
        (left, cy), (right, _) = self.px(self.x.lo, y), self.px(self.x.hi, y)
        self.marks.append(
            f'<line x1="{left:.1f}" y1="{cy:.1f}" x2="{right:.1f}" y2="{cy:.1f}" stroke="#B00" stroke-dasharray="5 3"/>'
            f'<text x="{right - 4:.1f}" y="{cy - 4:.1f}" class="lbl" text-anchor="end" fill="#B00">{escape(text)}</text>'
        )

    def marker(self, x: float, y: float, text: str) -> None:
        cx, cy = self.px(x, y)
        self.marks.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="none" stroke="#000" stroke-width="2"><title>{escape(text)}</title></circle>'
        )

    def render(self, ylabels: list[tuple[float, str]] | None = None) -> str:
        t, r, b, left = self.margin
        w, h = self.width, self.height
        out = [
            f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{escape(self.title)}">',
            f'<text x="{left}" y="20" class="ttl">{escape(self.title)}</text>',
        ]
        for v, lab in self.x.ticks(self.xfmt):
            x, _ = self.px(v, self.y.lo)
            out.append(
                f'<line x1="{x:.1f}" y1="{t}" x2="{x:.1f}" y2="{h - b}" class="grid"/><text x="{x:.1f}" y="{h - b + 16}" class="tck" text-anchor="middle">{escape(lab)}</text>'
            )
        for v, lab in ylabels or self.y.ticks(self.yfmt):
            _, y = self.px(self.x.lo, v)
            out.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{w - r}" y2="{y:.1f}" class="grid"/><text x="{left - 6}" y="{y + 4:.1f}" class="tck" text-anchor="end">{escape(lab)}</text>'
            )
        out.append(
            f'<rect x="{left}" y="{t}" width="{w - left - r}" height="{h - t - b}" fill="none" stroke="#999"/>'
        )
        out += self.marks
        out.append(
            f'<text x="{left + (w - left - r) / 2:.0f}" y="{h - 8}" class="axl" text-anchor="middle">{escape(self.xlabel)}</text>'
            f'<text x="14" y="{t + (h - t - b) / 2:.0f}" class="axl" text-anchor="middle" transform="rotate(-90 14 {t + (h - t - b) / 2:.0f})">{escape(self.ylabel)}</text>'
        )
        out += self._legend()
        out.append("</svg>")
        return "\n".join(out)

    def _legend(self) -> list[str]:
        t, r, _, _ = self.margin
        out = []
        for k, (label, col, dash) in enumerate(self.legend):
            y = t + 14 + 16 * k
            x = self.width - r - 150
            style = ' stroke-dasharray="6 4"' if dash else ""
            out.append(
                f'<line x1="{x}" y1="{y - 4}" x2="{x + 20}" y2="{y - 4}" stroke="{col}" stroke-width="2"{style}/><text x="{x + 26}" y="{y}" class="lbl">{escape(label)}</text>'
            )
        return out


def heatmap(title: str, matrix: list[list[int]], rows: list[str], cols: list[str]) -> str:
    """A confusion matrix: rows gold, columns predicted; darker = more items."""
    cell, left, top = 34, 110, 96
    w, h = max(left + cell * len(cols) + 12, 7 * len(title) + 12), top + cell * len(rows) + 12
    peak = max((max(r) for r in matrix), default=0) or 1
    out = [
        f'<svg class="plot heat" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="16" class="ttl">{escape(title)}</text>',
    ]
    for j, c in enumerate(cols):
        x = left + cell * j + cell / 2
        out.append(
            f'<text x="{x:.0f}" y="{top - 6}" class="tck" transform="rotate(-45 {x:.0f} {top - 6})">{escape(c)}</text>'
        )
    for i, (r, row) in enumerate(zip(rows, matrix)):
        y = top + cell * i
        out.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" class="tck" text-anchor="end">{escape(r)}</text>'
        )
        for j, v in enumerate(row):
            shade = 0.08 + 0.92 * v / peak if v else 0.0
            fill = f"rgba(0,114,178,{shade:.2f})" if i != j else f"rgba(0,158,115,{shade:.2f})"
            ink = "#fff" if shade > 0.55 else "#222"
            out.append(
                f'<rect x="{left + cell * j}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{fill}" stroke="#ddd"><title>gold {escape(r)} → {escape(cols[j])}: {v}</title></rect>'
                f'<text x="{left + cell * j + cell / 2 - 1:.0f}" y="{y + cell / 2 + 4:.0f}" class="tck" text-anchor="middle" fill="{ink}">{v}</text>'
            )
    out.append("</svg>")
    return "\n".join(out)
