"""The report as one self-contained HTML page: tables and inline SVG plots (latency
histogram, throughput and loops in flight over time). No script, no stylesheet, font or
image from elsewhere, and no link: it opens the same with no network."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import urlsplit

from .report import LoadReport

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 36
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea")

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem;
       color: #111827; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.sub { color: #4b5563; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; }
.card { border: 1px solid #e5e7eb; border-radius: .5rem; padding: .6rem .9rem; min-width: 9rem; }
.card b { display: block; font-size: 1.3rem; }
.bottleneck { background: #fef3c7; border-color: #f59e0b; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { text-align: left; padding: .15rem .9rem .15rem 0; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b91c1c; } .good { color: #15803d; }
svg text { font: 11px system-ui, sans-serif; fill: #374151; }
"""


def _n(value: float, unit: str = "") -> str:
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 100):
        return f"{value:,.0f}{unit}"
    return f"{value:,.3g}{unit}" if abs(value) < 100 else f"{value:,.1f}{unit}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def _mb(size: float) -> str:
    return f"{size / 1e6:,.1f} MB" if size >= 1e6 else f"{size / 1e3:,.1f} kB"


def _rows(rows: Sequence[tuple[str, object]]) -> str:
    cells = "".join(
        f"<tr><th>{escape(name)}</th><td class='n'>{escape(str(value))}</td></tr>"
        for name, value in rows
    )
    return f"<table>{cells}</table>"


def _check(ok: bool | None) -> str:
    if ok is None:
        return "<span>not known</span>"
    return "<span class='good'>yes</span>" if ok else "<span class='bad'>NO</span>"


def _frame(title: str, body: str, y_max: float, y_unit: str, x_left: str, x_right: str) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    grid = []
    for i in range(5):
        y = TOP + plot_h * i / 4
        value = y_max * (4 - i) / 4
        grid.append(
            f"<line x1='{LEFT}' y1='{y:.1f}' x2='{WIDTH - RIGHT}' y2='{y:.1f}' "
            f"stroke='#e5e7eb'/><text x='{LEFT - 6}' y='{y + 4:.1f}' text-anchor='end'>"
            f"{escape(_n(value, y_unit))}</text>"
        )
    return (
        f"<figure><svg role='img' aria-label='{escape(title)}' width='{WIDTH}' "
        f"height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}'>{''.join(grid)}{body}"
        f"<text x='{LEFT}' y='{HEIGHT - 8}'>{escape(x_left)}</text>"
        f"<text x='{WIDTH - RIGHT}' y='{HEIGHT - 8}' text-anchor='end'>{escape(x_right)}</text>"
        "</svg>"
        f"<figcaption>{escape(title)}</figcaption></figure>"
    )


def line_chart(
    title: str, xs: Sequence[float], lines: Sequence[tuple[str, Sequence[float]]], y_unit: str = ""
) -> str:
    """Lines over a shared x axis, with a legend; empty data draws an empty frame."""
    x_max = max(xs, default=0.0) or 1.0
    y_max = max((max(values, default=0) for _, values in lines), default=0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = []
    for i, (label, values) in enumerate(lines):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(
            f"{LEFT + plot_w * x / x_max:.1f},{TOP + plot_h * (1 - y / y_max):.1f}"
            for x, y in zip(xs, values, strict=False)
        )
        parts.append(
            f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{points}'/>"
        )
        parts.append(
            f"<text x='{LEFT + 8 + 150 * i}' y='{TOP + 12}' fill='{colour}'>"
            f"■ {escape(label)}</text>"
        )
    return _frame(title, "".join(parts), y_max, y_unit, "0 s", f"{_n(x_max)} s")


def histogram_chart(title: str, edges: Sequence[float], counts: Sequence[int]) -> str:
    """Bars of ``counts`` over the bins ``edges`` (in seconds, shown in ms)."""
    if not counts:
        return _frame(title, "", 1.0, "", "", "")
    low, high = edges[0], edges[-1]
    span = (high - low) or 1.0
    top = max(counts) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bars = []
    for i, count in enumerate(counts):
        x = LEFT + plot_w * (edges[i] - low) / span
        w = max(1.0, plot_w * (edges[i + 1] - edges[i]) / span - 1)
        h = plot_h * count / top
        bars.append(
            f"<rect x='{x:.1f}' y='{TOP + plot_h - h:.1f}' width='{w:.1f}' height='{h:.1f}' "
            f"fill='{COLOURS[0]}'><title>{_ms(edges[i])}–{_ms(edges[i + 1])}: {count}</title>"
            "</rect>"
        )
    return _frame(title, "".join(bars), top, "", _ms(low), _ms(high))


def _cards(r: LoadReport) -> str:
    cards = [
        ("loops ok", f"{r.loops.ok:,} / {r.loops.started:,}"),
        ("failed", f"{r.loops.failed:,}"),
        ("p50 · p95", f"{_ms(r.latency.p50)} · {_ms(r.latency.p95)}"),
        ("loops/s", _n(r.throughput.loops_per_s)),
        ("LLM requests/s", _n(r.throughput.llm_requests_per_s)),
    ]
    html = "".join(f"<div class='card'>{escape(k)}<b>{escape(v)}</b></div>" for k, v in cards)
    kind = r.bottleneck.kind.replace("_", " ")
    return (
        f"<div class='cards'>{html}<div class='card bottleneck'>bottleneck"
        f"<b>{escape(kind)}</b></div></div><p>{escape(r.bottleneck.reason)}</p>"
    )


def _where(url: str) -> str:
    """Host and port only: the page names no URL."""
    return urlsplit(url).netloc or url


def _setup(r: LoadReport) -> str:
    w, m, t = r.workload, r.mode, r.target
    work = (
        f"synthetic: {w.agents} agents, {w.steps} LLM calls per loop, {w.tools} tool "
        f"call{'' if w.tools == 1 else 's'} in each step but the last"
        if w.kind == "synthetic"
        else f"scenario {w.scenario}"
    )
    drive = (
        f"closed loop, {m.concurrency} at once"
        if m.kind == "closed"
        else f"open loop, {_n(m.rate or 0)}/s"
    )
    size = f"{m.loops:,} loops" if m.loops is not None else f"{_n(m.duration or 0)} s"
    llm = f"{t.kind} at {_where(t.url)}, model {t.model}, cap {t.cap}"
    return _rows(
        [
            ("workload", work),
            ("driven", f"{drive}, {size}, ramp-up {_n(m.ramp_up)} s, warm-up {_n(m.warm_up)} s"),
            (
                "LLM",
                llm + (f", rpm {t.rpm}" if t.rpm else "") + (f", tpm {t.tpm}" if t.tpm else ""),
            ),
            ("mock", f"latency {t.latency}, faults {t.faults or 'none'}" if t.latency else "—"),
            ("why there", t.why),
            ("event loop", f"{r.resources.event_loop}, {r.resources.gc}"),
        ]
    )


def _figures(r: LoadReport) -> str:
    lat, llm, res, acc, bus = r.latency, r.llm, r.resources, r.accounting, r.bus
    outcomes = _rows(list(r.loops.by_outcome.items()))
    latency = _rows([(k, _ms(getattr(lat, k))) for k in ("p50", "p90", "p95", "p99", "max")])
    calls = _rows(
        [
            ("calls (ok / failed)", f"{llm.calls:,} ({llm.succeeded:,} / {llm.failed:,})"),
            ("attempts", f"{llm.attempts:,}"),
            ("tokens/s", _n(r.throughput.tokens_per_s)),
            ("waited for the cap", f"{_n(llm.cap_wait)} call-s"),
            ("waited for the rate limit", f"{_n(llm.rate_wait)} call-s"),
            ("cost", f"${llm.cost:,.4f}"),
            *((f"retries: {k}", v) for k, v in llm.retries.items()),
            *((f"failed: {k}", v) for k, v in llm.failures.items()),
        ]
    )
    resources = _rows(
        [
            (
                "CPU (measured)",
                f"{_n(res.cpu_seconds_measured)} s, {res.cpu_utilisation:.0%} of a core",
            ),
            ("CPU per loop", _ms(res.cpu_per_loop)),
            ("peak RSS", _mb(res.peak_rss)),
            ("memory per loop in flight", _mb(res.rss_per_loop)),
            ("event-loop lag p99", _ms(res.lag_p99)),
            ("bus messages/s", _n(r.throughput.bus_messages_per_s)),
        ]
    )
    mock = "not known" if acc.mock_requests is None else f"{acc.mock_requests:,}"
    checks = (
        "<table><tr><th>loops: ok + failed = started</th>"
        f"<td>{_check(acc.loops_balanced)}</td></tr>"
        f"<tr><th>mock served ({mock}) = gateway attempts ({acc.gateway_attempts:,})</th>"
        f"<td>{_check(acc.llm_balanced)}</td></tr>"
        f"<tr><th>bus balanced ({bus.published:,} published, {bus.unprocessed} unprocessed)</th>"
        f"<td>{_check(acc.bus_balanced and bus.unprocessed == 0)}</td></tr>"
        f"<tr><th>tasks left running</th><td>{_check(acc.tasks_left == 0)}</td></tr></table>"
    )
    return (
        f"<h2>Loops</h2>{outcomes}<h2>Latency (measured, ok)</h2>{latency}"
        f"<h2>LLM</h2>{calls}<h2>Resources</h2>{resources}<h2>Accounting</h2>{checks}"
    )


def render(r: LoadReport) -> str:
    """The page for ``r``."""
    s = r.series
    plots = (
        histogram_chart("Loop latency (measured, ok loops)", r.histogram.edges, r.histogram.counts)
        + line_chart("Throughput (loops ended per second)", s.t, [("loops/s", s.throughput)])
        + line_chart(
            "In flight",
            s.t,
            [
                ("loops", s.loops_in_flight),
                ("LLM calls", s.llm_in_flight),
                ("LLM queued", s.llm_queued),
            ],
        )
    )
    notes = "".join(f"<li>{escape(note)}</li>" for note in r.notes)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>hivebus load · {escape(r.started_at)}</title><style>{STYLE}</style></head><body>"
        f"<h1>hivebus load</h1><p class='sub'>{escape(r.started_at)} · {_n(r.elapsed)} s</p>"
        f"{_cards(r)}{_setup(r)}<h2>Plots</h2>{plots}{_figures(r)}"
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
        + "</body></html>\n"
    )
