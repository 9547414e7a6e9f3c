"""Charts as inline SVG made on the server: no chart library, nothing to download, and
they print and screenshot like the rest of the page. Colours come from CSS classes
(admin/static/parley.css); every mark has a <title> tooltip."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

LABEL_W, BAR_H, GAP, PAD = 190, 18, 8, 6


@dataclass(frozen=True)
class Segment:
    label: str
    value: float
    css: str


@dataclass(frozen=True)
class Bar:
    """One row of a waterfall: a labelled span [start, end] on a shared time axis."""

    label: str
    start: float
    end: float
    css: str
    title: str = ""
    indent: int = 0


@dataclass(frozen=True)
class Mark:
    """A moment drawn across a waterfall as a vertical line (e.g. the end of speech)."""

    label: str
    at: float
    css: str


def nice_step(span: float, ticks: int = 6) -> float:
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _axis(lo: float, hi: float, x0: float, width: float, top: float, bottom: float) -> list[str]:
    step = nice_step(hi - lo)
    parts = []
    tick = math.ceil(lo / step) * step
    while tick <= hi + 1e-9:
        x = x0 + (tick - lo) / (hi - lo) * width
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 12}">{_fmt(tick)}</text>')
        tick += step
    return parts


def _svg(width: float, height: float, body: list[str], label: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" width="100%" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[Segment]]], *, unit: str = "ms", width: int = 760
) -> Markup:
    """One horizontal bar per row, its segments end to end, and a legend."""
    totals = [sum(max(s.value, 0.0) for s in segs) for _, segs in rows] or [0.0]
    hi = max(max(totals), 1e-9)
    plot_w = width - LABEL_W - 80  # room for the total after the bar
    body: list[str] = []
    legend = {s.css: s.label for _, segs in rows for s in segs}
    y = PAD
    per_line = max(1, (width - LABEL_W) // 120)  # legend entries wrap onto more lines
    for i, (css, label) in enumerate(legend.items()):
        lx, ly = LABEL_W + (i % per_line) * 120, y + (i // per_line) * 14
        body.append(f'<rect class="{css}" x="{lx}" y="{ly}" width="10" height="10"/>')
        body.append(f'<text class="legend" x="{lx + 14}" y="{ly + 9}">{escape(label)}</text>')
    top = y + 20 + 14 * ((len(legend) - 1) // per_line if legend else 0)
    for i, (name, segs) in enumerate(rows):
        row_y = top + i * (BAR_H + GAP)
        body.append(f'<text class="label" x="{LABEL_W - 8}" y="{row_y + 13}">{escape(name)}</text>')
        x = float(LABEL_W)
        for seg in segs:
            w = max(seg.value, 0.0) / hi * plot_w
            tip = f"{name}: {seg.label} {seg.value:.1f} {unit}"
            body.append(
                f'<rect class="{seg.css}" x="{x:.1f}" y="{row_y}" width="{w:.1f}" '
                f'height="{BAR_H}"><title>{escape(tip)}</title></rect>'
            )
            x += w
        body.append(
            f'<text class="value" x="{x + 4:.1f}" y="{row_y + 13}">{_fmt(totals[i])} {unit}</text>'
        )
    bottom = top + len(rows) * (BAR_H + GAP)
    body += _axis(0.0, hi, LABEL_W, plot_w, top - 4, bottom)
    return _svg(width, bottom + 18, body, "stacked bar chart")


def percentile_bars(
    rows: Sequence[tuple[str, float, float, float]], *, unit: str = "ms", width: int = 760
) -> Markup:
    """Per row (label, p50, p90, p99): a bar to p50, a lighter one to p90, a tick at p99."""
    finite = [v for _, *vals in rows for v in vals if math.isfinite(v)]
    hi = max(finite or [1.0])
    plot_w = width - LABEL_W - 70
    body: list[str] = []
    for i, (name, p50, p90, p99) in enumerate(rows):
        y = PAD + i * (BAR_H + GAP)
        body.append(f'<text class="label" x="{LABEL_W - 8}" y="{y + 13}">{escape(name)}</text>')
        if not math.isfinite(p50):
            continue
        tip = escape(f"{name}: p50 {p50:.1f}, p90 {p90:.1f}, p99 {p99:.1f} {unit}")
        for css, value in (("p90", p90), ("p50", p50)):
            w = value / hi * plot_w
            body.append(
                f'<rect class="{css}" x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}">'
                f"<title>{tip}</title></rect>"
            )
        x99 = LABEL_W + p99 / hi * plot_w
        body.append(
            f'<line class="p99" x1="{x99:.1f}" x2="{x99:.1f}" y1="{y - 2}" y2="{y + BAR_H + 2}">'
            f"<title>{tip}</title></line>"
        )
        body.append(f'<text class="value" x="{x99 + 5:.1f}" y="{y + 13}">{_fmt(p50)}</text>')
    bottom = PAD + len(rows) * (BAR_H + GAP)
    body += _axis(0.0, hi, LABEL_W, plot_w, 2, bottom)
    return _svg(width, bottom + 18, body, "percentile chart")


def grouped_bars(
    rows: Sequence[tuple[str, Sequence[Segment]]],
    *,
    top: float,
    unit: str = "",
    width: int = 760,
) -> Markup:
    """Per row (e.g. a pipeline) one thin bar per segment (e.g. a score), on 0..top."""
    legend = {s.css: s.label for _, segs in rows for s in segs}
    plot_w = width - LABEL_W - 60
    thin = 9
    body: list[str] = []
    for i, (css, label) in enumerate(legend.items()):
        x = LABEL_W + i * 110
        body.append(f'<rect class="{css}" x="{x}" y="{PAD}" width="10" height="10"/>')
        body.append(f'<text class="legend" x="{x + 14}" y="{PAD + 9}">{escape(label)}</text>')
    y = PAD + 22
    first = y
    for name, segs in rows:
        height = len(segs) * (thin + 2)
        middle = y + height / 2 + 4
        body.append(f'<text class="label" x="{LABEL_W - 8}" y="{middle:.0f}">{escape(name)}</text>')
        for seg in segs:
            w = max(seg.value, 0.0) / top * plot_w
            tip = escape(f"{name}: {seg.label} {seg.value:.2f}{unit}")
            body.append(
                f'<rect class="{seg.css}" x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{thin}">'
                f"<title>{tip}</title></rect>"
                f'<text class="value small" x="{LABEL_W + w + 4:.1f}" y="{y + 8}">'
                f"{seg.value:.2f}</text>"
            )
            y += thin + 2
        y += GAP + 4
    body += _axis(0.0, top, LABEL_W, plot_w, first - 4, y)
    return _svg(width, y + 18, body, "grouped bar chart")


def waterfall(
    bars: Sequence[Bar], *, marks: Sequence[Mark] = (), unit: str = "ms", width: int = 900
) -> Markup:
    """A timeline: one row per bar, all on one axis (e.g. a turn's stages, a trace),
    with ``marks`` as labelled vertical lines across it."""
    if not bars:
        return Markup("")
    lo = min(0.0, *(b.start for b in bars), *(m.at for m in marks))
    hi = max(max(b.end for b in bars), *(m.at for m in marks), lo + 1e-6)
    label_w = 260
    plot_w = width - label_w - 80
    scale = plot_w / (hi - lo)
    body: list[str] = []
    lines: list[str] = []  # drawn over the bars
    top = PAD + (14 if marks else 0)  # room for the marks' labels
    bottom = top + len(bars) * (BAR_H + 4)
    for i, mark in enumerate(marks):
        x = label_w + (mark.at - lo) * scale
        anchor = "end" if i == 0 and len(marks) > 1 else "start"
        shift = -3 if anchor == "end" else 3
        lines.append(
            f'<line class="{mark.css}" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 12}" y2="{bottom}">'
            f"<title>{escape(mark.label)}: {mark.at:.1f} {unit}</title></line>"
            f'<text class="mark-label" x="{x + shift:.1f}" y="{top - 4}" '
            f'text-anchor="{anchor}">{escape(mark.label)}</text>'
        )
    for i, bar in enumerate(bars):
        y = top + i * (BAR_H + 4)
        x = label_w + (bar.start - lo) * scale
        w = max((bar.end - bar.start) * scale, 1.0)
        tip = bar.title or f"{bar.label}: {bar.end - bar.start:.1f} {unit}"
        body.append(
            f'<text class="label-start" x="{8 + 12 * bar.indent}" y="{y + 13}">'
            f"{escape(bar.label[:40])}</text>"
        )
        body.append(
            f'<rect class="{bar.css}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{BAR_H}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        body.append(
            f'<text class="value" x="{x + w + 4:.1f}" y="{y + 13}">'
            f"{_fmt(bar.end - bar.start)}</text>"
        )
    body += _axis(lo, hi, label_w, plot_w, top - 4, bottom)
    return _svg(width, bottom + 18, body + lines, "waterfall")


@dataclass(frozen=True)
class Interval:
    """One row of an interval chart: an estimate and its confidence interval."""

    label: str
    estimate: float
    low: float
    high: float


def intervals(
    rows: Sequence[Interval],
    *,
    centre: float = 0.0,
    unit: str = "",
    scale: float = 1.0,
    width: int = 760,
) -> Markup:
    """Per row a dot at the estimate and a line across its interval, on one axis that
    holds every interval and ``centre`` (dashed: no difference, or an even share).
    Values are shown multiplied by ``scale`` (e.g. 100 for percentage points)."""
    finite = [v * scale for r in rows for v in (r.estimate, r.low, r.high) if math.isfinite(v)]
    lo = min([centre * scale, *finite])
    hi = max([centre * scale, *finite])
    pad = (hi - lo) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    plot_w = width - LABEL_W - 80
    body: list[str] = []

    def x(value: float) -> float:
        return LABEL_W + (value * scale - lo) / (hi - lo) * plot_w

    bottom = PAD + len(rows) * (BAR_H + GAP)
    for i, row in enumerate(rows):
        y = PAD + i * (BAR_H + GAP)
        middle = y + BAR_H / 2
        body.append(
            f'<text class="label" x="{LABEL_W - 8}" y="{y + 13}">{escape(row.label)}</text>'
        )
        if not math.isfinite(row.estimate):
            continue
        shown = f"{_fmt(row.estimate * scale)}{unit}"
        if math.isfinite(row.low) and math.isfinite(row.high):
            low, high = _fmt(row.low * scale), _fmt(row.high * scale)
            tip = escape(f"{row.label}: {shown} (95 % CI {low} to {high}{unit})")
            body.append(
                f'<line class="ci" x1="{x(row.low):.1f}" x2="{x(row.high):.1f}" y1="{middle:.1f}" '
                f'y2="{middle:.1f}"><title>{tip}</title></line>'
            )
            end = x(row.high)
        else:
            tip, end = escape(f"{row.label}: {shown}"), x(row.estimate)
        body.append(
            f'<circle class="estimate" cx="{x(row.estimate):.1f}" cy="{middle:.1f}" r="4">'
            f"<title>{tip}</title></circle>"
        )
        body.append(f'<text class="value" x="{end + 6:.1f}" y="{y + 13}">{escape(shown)}</text>')
    body.append(
        f'<line class="zero" x1="{x(centre):.1f}" x2="{x(centre):.1f}" y1="2" y2="{bottom}"/>'
    )
    body += _axis(lo, hi, LABEL_W, plot_w, 2, bottom)
    return _svg(width, bottom + 18, body, "interval chart")
