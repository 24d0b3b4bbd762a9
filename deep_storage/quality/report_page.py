"""The gate's report: one self-contained HTML page a person reads at a glance.

The Kubeflow UI shows an HTML artifact in a sandboxed iframe, and the cluster may have no
internet: everything is inline (CSS, SVG charts), and a Content-Security-Policy forbids the page
any request. Order: the verdict by the gate's own levels; per table and day, every rule with its
count; the offending rows of each broken rule by their real values; a fortnight of rows, statuses
and the freshness lag; links to the quarantine, the results JSON and GX's own Data Docs page.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from deep_storage.core.defaults import LAG_SLA

if TYPE_CHECKING:
    from deep_storage.quality.verdict import TableReport, ValidationReport

COLOURS = {"passed": "#1b7f3b", "warned": "#9a5b00", "failed": "#b00020"}
STATUS_COLOURS = {
    "EXECUTED": "#1b7f3b",
    "SUBMITTED": "#2f6fb0",
    "PENDING": "#8a8f98",
    "FAILED": "#b00020",
    "BLOCKED": "#9a5b00",
}
TABLE_COLOURS = {"bronze": "#a0642b", "silver": "#6b7b8c"}
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;
margin:0;padding:16px 20px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px}
h3{font-size:15px;margin:16px 0 6px}
.verdict{border-radius:8px;padding:14px 18px;color:#fff;display:flex;gap:18px;align-items:center}
.verdict .word{font-size:30px;font-weight:700;letter-spacing:.04em;min-width:9ch}
.verdict p{margin:2px 0}
.passed{background:#1b7f3b}.warned{background:#9a5b00}.failed{background:#b00020}
.facts{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0 0;padding:0;list-style:none}
.facts li{background:#f1f3f6;border-radius:6px;padding:6px 10px}
.facts b{font-size:16px}
table{border-collapse:collapse;margin:4px 0 8px;min-width:50%}
th,td{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pill{display:inline-block;border-radius:10px;padding:0 8px;color:#fff;font-size:12px;
font-weight:600;text-transform:uppercase}
tr.broken td{background:#fff7f0}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f1f3f6;padding:1px 4px;
border-radius:4px;word-break:break-all}
td.value{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.null{color:#8a8f98;font-style:italic}
.muted{color:#5b6270}
.charts{display:flex;flex-wrap:wrap;gap:18px}
.chart{border:1px solid #e3e6eb;border-radius:8px;padding:8px 10px;margin:0}
.chart h3{margin:0 0 4px;font-size:13px}
.legend{font-size:12px;color:#5b6270}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;border-radius:2px}
section.day{border-top:2px solid #e3e6eb;margin-top:18px}
"""


def render(reports: Sequence[ValidationReport]) -> str:
    """One page for the days of one gate run (usually one)."""
    if not reports:
        raise ValueError("no report to render")
    verdict = _worst(r.verdict()["verdict"] for r in reports)
    days = [r.date for r in reports]
    span = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    body = [_verdict(reports, verdict, span)]
    for r in reports:
        body.append(_day(r, heading=len(reports) > 1))
    body.append(_charts(reports[-1]))
    body.append(_links(reports))
    body.append(
        f'<p class="muted">Run {_e(reports[-1].run_id)}; checked by Great Expectations; page '
        f"written {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC.</p>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Data quality {_e(span)}: {verdict}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _worst(verdicts) -> str:
    order = ["passed", "warned", "failed"]
    return max(verdicts, key=order.index, default="passed")


def _verdict(reports: Sequence[ValidationReport], verdict: str, span: str) -> str:
    failed = [f"{r.date} {f}" if len(reports) > 1 else f for r in reports for f in r.failed]
    warned = [f"{r.date} {w}" if len(reports) > 1 else w for r in reports for w in r.warned]
    if failed:
        meaning = (
            f"The gate failed: {len(failed)} fail-level rule{'s' * (len(failed) > 1)} broke "
            f"({', '.join(failed)}); the run fails with it."
        )
    elif warned:
        meaning = (
            "The gate passed with warnings: no fail-level rule broke; "
            f"{len(warned)} warn-level rule{'s' * (len(warned) > 1)} did "
            f"({', '.join(warned)})."
        )
    else:
        meaning = "The gate passed: every rule held."
    totals: dict[str, float] = {}
    for r in reports:
        for k, v in r.metrics().items():
            totals[k] = totals.get(k, 0) + v
    facts = [
        ("rows checked", f"{int(totals.get('rows_checked', 0)):,}"),
        ("rules failed", f"{int(totals.get('rules_failed', 0))}"),
        ("rules warned", f"{int(totals.get('rules_warned', 0))}"),
        ("rules passed", f"{int(totals.get('rules_passed', 0))}"),
        ("rows quarantined", f"{int(totals.get('rows_quarantined', 0)):,}"),
    ]
    facts_html = "".join(f"<li><b>{_e(v)}</b> {_e(k)}</li>" for k, v in facts)
    return (
        f'<header class="verdict {verdict}" id="verdict" data-verdict="{verdict}">'
        f'<div class="word">{verdict.upper()}</div><div>'
        f"<h1>Data quality for {_e(span)}</h1><p>{_e(meaning)}</p>"
        f"<p>{_e(reports[-1].freshness())}</p></div></header>"
        f'<ul class="facts">{facts_html}</ul>'
    )


def _day(report: ValidationReport, heading: bool) -> str:
    parts = []
    if heading:
        v = report.verdict()["verdict"]
        parts.append(f"<h2>{_e(report.date)} {_pill(v)}</h2>")
    for t in report.tables:
        parts.append(_table(t))
    return f'<section class="day" data-date="{_e(report.date)}">{"".join(parts)}</section>'


def _pill(outcome: str) -> str:
    return f'<span class="pill {outcome}">{_e(outcome)}</span>'


def _table(t: TableReport) -> str:
    outcome = t.outcome
    order = {"failed": 0, "warned": 1, "passed": 2}
    rows = []
    for r in sorted(t.results, key=lambda r: (order[r.outcome], r.name)):
        count, share = _observed(r, t.rows)
        rows.append(
            f'<tr class="{"broken" if not r.success else ""}" data-rule="{_e(r.name)}">'
            f"<td><b>{_e(r.name)}</b><br><span class=muted>{_e(r.description)}</span></td>"
            f"<td>{_e(r.level)}</td><td>{_pill(r.outcome)}</td>"
            f'<td class="num">{count}</td><td class="num">{share}</td></tr>'
        )
    notes = "".join(f"<li>{_e(n)}</li>" for n in t.notes)
    broken = [r for r in t.results if not r.success]
    offending = "".join(_offending(t, r) for r in sorted(broken, key=lambda r: order[r.outcome]))
    return (
        f'<section class="table" data-table="{_e(t.table)}" data-outcome="{outcome}">'
        f"<h2>{_e(t.table)} · {_e(t.date)} {_pill(outcome)}</h2>"
        f"<p>{t.rows:,} rows; {len(t.passed)} rules passed, {len(t.failed)} failed, "
        f"{len(t.warned)} warned; {t.quarantined:,} rows quarantined.</p>"
        "<table><thead><tr><th>rule</th><th>level</th><th>result</th><th>observed</th>"
        f"<th>% of rows</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (f"<ul class=muted>{notes}</ul>" if notes else "")
        + offending
        + "</section>"
    )


def _observed(r, rows: int) -> tuple[str, str]:
    if r.percent is not None:
        count = r.observed if isinstance(r.observed, int) else None
        shown = f"{count:,}" if count is not None else _e(r.observed)
        return shown, f"{r.percent:.3g}%" if r.percent else "0%"
    if r.success or r.observed is None:
        return "", ""
    return _e(str(r.observed)[:200]), ""


def _offending(t: TableReport, r) -> str:
    """Up to SAMPLES offending rows of a broken rule, by their real values."""
    head = (
        f'<h3 id="{_e(t.table)}-{_e(r.name)}" data-offending="{_e(r.name)}">{_pill(r.outcome)} '
        f"{_e(r.name)}: {_e(r.description)}</h3>"
    )
    if not r.samples:
        if r.observed is not None:
            return head + f"<p>Observed: <code>{_e(r.observed)}</code></p>"
        return head
    columns: list[str] = []
    for sample in r.samples:
        columns += [c for c in sample if c not in columns]
    header = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="value">{_value(s.get(c))}</td>' for c in columns) + "</tr>"
        for s in r.samples
    )
    more = ""
    if isinstance(r.observed, int) and r.observed > len(r.samples):
        more = (
            f"<p class=muted>First {len(r.samples)} of {r.observed:,} rows; every one is in the "
            "quarantine folder, with its reasons.</p>"
        )
    return head + f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>{more}"


def _value(v: Any) -> str:
    if v is None:
        return '<span class="null">NULL</span>'
    if isinstance(v, Decimal):  # plain digits: Spark's JSON writes 0.00000001 as 1E-8
        return _e(format(v, "f"))
    return _e(v)


# --- charts -------------------------------------------------------------------------------------


def _charts(report: ValidationReport) -> str:
    history = report.history
    if not history:
        return ""
    days = sorted({d for series in history.values() for d in series})
    rows = {
        day: {t: history[t][day]["rows"] for t in ("bronze", "silver") if day in history.get(t, {})}
        for day in days
    }
    statuses = {
        day: history["silver"][day]["statuses"]
        for day in days
        if day in history.get("silver", {}) and history["silver"][day].get("statuses")
    }
    charts = [
        _chart(
            "Rows per day (bronze events, silver executions)",
            _grouped_bars(days, rows, TABLE_COLOURS, report.date),
            TABLE_COLOURS,
        ),
        _chart(
            "Silver executions per status",
            _stacked_bars(days, statuses, STATUS_COLOURS, report.date)
            if statuses
            else '<p class="muted">No status counts in these days\' manifests.</p>',
            STATUS_COLOURS,
        ),
        _chart("Freshness lag behind the source", _lag(report), {}),
    ]
    return (
        f"<h2>Last {len(days)} days up to {_e(report.date)}</h2>"
        f'<div class="charts">{"".join(charts)}</div>'
    )


def _chart(title: str, svg: str, legend: dict[str, str]) -> str:
    keys = "".join(f'<span style="background:{c}"></span>{_e(k)}' for k, c in legend.items())
    return (
        f'<figure class="chart"><h3>{_e(title)}</h3>{svg}'
        + (f'<div class="legend">{keys}</div>' if keys else "")
        + "</figure>"
    )


_W, _H, _PAD_L, _PAD_B, _PAD_T = 440, 190, 56, 34, 10


def _axis(top: float) -> tuple[str, float]:
    """Horizontal grid lines and labels; returns them and the value at the top of the plot."""
    top = _nice(top)
    lines = []
    plot_h = _H - _PAD_B - _PAD_T
    for i in range(5):
        value = top * i / 4
        y = _H - _PAD_B - plot_h * i / 4
        lines.append(
            f'<line x1="{_PAD_L}" x2="{_W - 4}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6eb"/>'
            f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10" '
            f'fill="#5b6270">{_short(value)}</text>'
        )
    return "".join(lines), top


def _nice(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _short(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _day_label(days: list[str], i: int, x: float, current: str) -> str:
    day = days[i]
    weight = ' font-weight="700"' if day == current else ""
    every = max(1, len(days) // 7)
    if (len(days) - 1 - i) % every and day != current:
        return ""
    return (
        f'<text x="{x:.1f}" y="{_H - _PAD_B + 13}" text-anchor="middle" font-size="10" '
        f'fill="#5b6270"{weight}>{_e(day[5:])}</text>'
    )


def _svg(inner: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{_e(label)}">{inner}</svg>'
    )


def _grouped_bars(
    days: list[str], values: dict[str, dict[str, int]], colours: dict[str, str], current: str
) -> str:
    grid, top = _axis(max((v for d in values.values() for v in d.values()), default=0))
    slot = (_W - _PAD_L - 4) / max(1, len(days))
    width = slot * 0.8 / max(1, len(colours))
    plot_h = _H - _PAD_B - _PAD_T
    bars = []
    for i, day in enumerate(days):
        x0 = _PAD_L + slot * i + slot * 0.1
        for j, (name, colour) in enumerate(colours.items()):
            v = values.get(day, {}).get(name)
            if v is None:
                continue
            h = plot_h * v / top
            bars.append(
                f'<rect x="{x0 + j * width:.1f}" y="{_H - _PAD_B - h:.1f}" width="{width:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{_e(day)} {name}: {v:,} rows'
                "</title></rect>"
            )
        bars.append(_day_label(days, i, x0 + slot * 0.4, current))
    return _svg(grid + "".join(bars), "rows per day")


def _stacked_bars(
    days: list[str], values: dict[str, dict[str, int]], colours: dict[str, str], current: str
) -> str:
    grid, top = _axis(max((sum(d.values()) for d in values.values()), default=0))
    slot = (_W - _PAD_L - 4) / max(1, len(days))
    plot_h = _H - _PAD_B - _PAD_T
    bars = []
    for i, day in enumerate(days):
        x = _PAD_L + slot * i + slot * 0.15
        y = _H - _PAD_B
        for status, colour in colours.items():
            v = values.get(day, {}).get(status, 0)
            if not v:
                continue
            h = plot_h * v / top
            y -= h
            bars.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{_e(day)} {status}: {v:,}</title></rect>'
            )
        bars.append(_day_label(days, i, x + slot * 0.35, current))
    return _svg(grid + "".join(bars), "executions per status per day")


def _lag(report: ValidationReport) -> str:
    if not report.lag_s:
        return '<p class="muted">Not measured: no source database configured for the gate.</p>'
    rows = []
    scale = max(max(report.lag_s.values()), *(LAG_SLA[t].total_seconds() for t in report.lag_s))
    scale = _nice(scale * 1.1)
    width = _W - 130
    for i, (table, lag) in enumerate(sorted(report.lag_s.items())):
        sla = LAG_SLA[table].total_seconds()
        y = 18 + i * 52
        colour = COLOURS["passed"] if lag <= sla else COLOURS["failed"]
        bar = width * lag / scale
        mark = 90 + width * sla / scale
        rows.append(
            f'<text x="0" y="{y + 15}" font-size="12" fill="#1d2330">{table}</text>'
            f'<rect x="90" y="{y}" width="{max(bar, 1):.1f}" height="22" fill="{colour}">'
            f"<title>{table}: {lag:.0f} s behind the source</title></rect>"
            f'<line x1="{mark:.1f}" x2="{mark:.1f}" y1="{y - 4}" y2="{y + 26}" stroke="#1d2330" '
            'stroke-dasharray="3 2"/>'
            f'<text x="90" y="{y + 40}" font-size="11" fill="#5b6270">{_duration(lag)} behind; '
            f"SLA {_duration(sla)} (dashed)</text>"
        )
    height = 18 + 52 * len(report.lag_s)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" role="img" aria-label="freshness lag">{"".join(rows)}</svg>'
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --- links --------------------------------------------------------------------------------------


def _links(reports: Sequence[ValidationReport]) -> str:
    items = []
    for r in reports:
        for t in r.tables:
            for label, uri in t.links.items():
                items.append(
                    f"<li>{_e(t.table)} {_e(t.date)}, {_e(label)}: "
                    f'<a href="{_e(_href(uri, r.endpoint))}"><code>{_e(uri)}</code></a></li>'
                )
    if not items:
        return ""
    return f"<h2>Files</h2><ul>{''.join(items)}</ul>"


def _href(uri: str, endpoint: str | None) -> str:
    """A browser address for a lake URI: file:// as is; s3a:// through the store's endpoint,
    path-style (the page may be opened where the store is reachable; the URI is shown too)."""
    parts = urlsplit(uri)
    if parts.scheme in ("s3a", "s3") and endpoint:
        return f"{endpoint.rstrip('/')}/{parts.netloc}{parts.path}"
    return uri
