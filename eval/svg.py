"""Small inline-SVG charts for the self-contained HTML report (no CDN, no matplotlib).

Three shapes cover the report: bars with error bars, lines with optional error bars, and
stacked horizontal bars. Each returns an ``<svg>`` string sized in pixels; text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 56
COLORS = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float | None = None
    high: float | None = None
    note: str = ""  # shown under the label, e.g. "n=200"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    low: float | None = None
    high: float | None = None
    note: str = ""


def _frame(title: str, body: list[str], width: int = WIDTH, height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img">'
        f"<title>{escape(title)}</title>"
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>" + "".join(body) + "</svg>"
    )


def _y_axis(y_max: float, label: str, plot_h: float) -> list[str]:
    out = [
        f'<text x="12" y="{TOP + plot_h / 2}" transform="rotate(-90 12 {TOP + plot_h / 2})" '
        f'text-anchor="middle">{escape(label)}</text>'
    ]
    for i in range(5):
        value = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        label = f"{value:,.0f}" if y_max >= 10 else f"{value:.2g}"
        out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    return out


def _nice_max(values: Sequence[float]) -> float:
    top = max((v for v in values if not math.isnan(v)), default=1.0)
    if top <= 0:
        return 1.0
    if top <= 1.0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    return math.ceil(top / magnitude) * magnitude


def bar_chart(title: str, bars: Sequence[Bar], y_label: str, y_max: float | None = None) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    top = y_max or _nice_max([b.high if b.high is not None else b.value for b in bars])
    body = _y_axis(top, y_label, plot_h)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(bars))

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * max(0.0, min(value, top)) / top

    for i, bar in enumerate(bars):
        x = LEFT + slot * i + slot * 0.15
        w = slot * 0.7
        value = 0.0 if math.isnan(bar.value) else bar.value
        body.append(
            f'<rect x="{x:.1f}" y="{y(value):.1f}" width="{w:.1f}" '
            f'height="{TOP + plot_h - y(value):.1f}" fill="{COLORS[i % len(COLORS)]}">'
            f"<title>{escape(bar.label)}: {value:.3f}</title></rect>"
        )
        if bar.low is not None and bar.high is not None and not math.isnan(bar.low):
            cx = x + w / 2
            body.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(bar.low):.1f}" '
                f'y2="{y(bar.high):.1f}" stroke="#222" stroke-width="1.5"/>'
            )
            for end in (bar.low, bar.high):
                body.append(
                    f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{y(end):.1f}" '
                    f'y2="{y(end):.1f}" stroke="#222" stroke-width="1.5"/>'
                )
        shown = f"{value:.0f}" if top >= 10 else f"{value:.2f}"
        body.append(
            f'<text x="{x + w / 2:.1f}" y="{y(value) - 4:.1f}" text-anchor="middle">{shown}</text>'
        )
        label_y = TOP + plot_h + 14
        body.append(
            f'<text x="{x + w / 2:.1f}" y="{label_y}" text-anchor="middle">'
            f"{escape(bar.label)}</text>"
        )
        if bar.note:
            body.append(
                f'<text x="{x + w / 2:.1f}" y="{label_y + 13}" text-anchor="middle" '
                f'fill="#666">{escape(bar.note)}</text>'
            )
    return _frame(title, body)


def line_chart(
    title: str,
    series: Mapping[str, Sequence[Point]],
    x_label: str,
    y_label: str,
    y_max: float | None = None,
) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    plot_w = WIDTH - LEFT - RIGHT - 110  # room for the legend
    points = [p for ps in series.values() for p in ps]
    top = y_max or _nice_max([p.high if p.high is not None else p.y for p in points])
    xs = sorted({p.x for p in points}) or [0.0]
    x_lo, x_hi = xs[0], xs[-1] if xs[-1] > xs[0] else xs[0] + 1
    body = _y_axis(top, y_label, plot_h)

    def px(x: float) -> float:
        return LEFT + plot_w * (x - x_lo) / (x_hi - x_lo)

    def py(value: float) -> float:
        return TOP + plot_h - plot_h * max(0.0, min(value, top)) / top

    for x in xs:
        body.append(
            f'<text x="{px(x):.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{x:g}</text>'
        )
    body.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    for i, (name, ps) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        coords = " ".join(f"{px(p.x):.1f},{py(p.y):.1f}" for p in ps)
        body.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        for p in ps:
            if p.low is not None and p.high is not None and not math.isnan(p.low):
                body.append(
                    f'<line x1="{px(p.x):.1f}" x2="{px(p.x):.1f}" y1="{py(p.low):.1f}" '
                    f'y2="{py(p.high):.1f}" stroke="{color}" stroke-width="1"/>'
                )
            body.append(
                f'<circle cx="{px(p.x):.1f}" cy="{py(p.y):.1f}" r="3" fill="{color}">'
                f"<title>{escape(name)} {p.x:g}: {p.y:.3f} {escape(p.note)}</title>"
                "</circle>"
            )
            if p.note:
                body.append(
                    f'<text x="{px(p.x):.1f}" y="{TOP + plot_h + 27}" '
                    f'text-anchor="middle" fill="#666">{escape(p.note)}</text>'
                )
        legend_y = TOP + 14 * i + 8
        body.append(
            f'<rect x="{WIDTH - RIGHT - 100}" y="{legend_y - 8}" width="10" height="10" '
            f'fill="{color}"/><text x="{WIDTH - RIGHT - 86}" y="{legend_y + 1}">'
            f"{escape(name)}</text>"
        )
    return _frame(title, body)


def stacked_bars(
    title: str, rows: Sequence[tuple[str, dict[str, int]]], categories: Sequence[str]
) -> str:
    """One horizontal bar per row, split into ``categories`` by share (counts in tooltips)."""
    row_h, gap = 22, 8
    height = TOP + len(rows) * (row_h + gap) + 40
    label_w = 120
    plot_w = WIDTH - label_w - RIGHT
    body: list[str] = []
    for r, (label, counts) in enumerate(rows):
        y = TOP + r * (row_h + gap)
        total = sum(counts.values()) or 1
        body.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">'
            f"{escape(label)} (n={sum(counts.values())})</text>"
        )
        x = float(label_w)
        for c, category in enumerate(categories):
            w = plot_w * counts.get(category, 0) / total
            if w > 0:
                body.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h}" '
                    f'fill="{COLORS[c % len(COLORS)]}"><title>{escape(category)}: '
                    f"{counts.get(category, 0)}</title></rect>"
                )
                if w > 24:
                    body.append(
                        f'<text x="{x + w / 2:.1f}" y="{y + 15}" text-anchor="middle" '
                        f'fill="#fff">{counts.get(category, 0)}</text>'
                    )
            x += w
    legend_y = height - 18
    for c, category in enumerate(categories):
        x = label_w + c * 130
        body.append(
            f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" '
            f'fill="{COLORS[c % len(COLORS)]}"/><text x="{x + 14}" y="{legend_y}">'
            f"{escape(category)}</text>"
        )
    return _frame(title, body, height=height)
