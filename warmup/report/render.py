"""Render a ``RunReport`` as one self-contained HTML page: no outside URL, no script.

Every text that comes from the log or the database (account ids, errors, URLs, paths, task names)
goes through ``esc`` (``html.escape`` with quotes), in element text and in attribute values alike,
so a page's error text can never become markup. A Content-Security-Policy meta tag backs this up:
no script may run and nothing may be fetched but ``data:`` images, even if a text slipped through.

Everything computed from event values is bounded: the timeline has at most ``MAX_TICKS`` grid
lines whatever its span (a ts in year 0001 next to one in 2026 is two thousand years), and a time
that ``datetime`` cannot show is printed as seconds from the epoch instead of raising.

The timeline is plain HTML/CSS: one flex row per account, bars absolutely positioned inside its
track by percentages of the run's span, so the browser lays out 500 lanes of bars in one pass.
Details of a bar are in its ``title`` (a tooltip); failed lanes link to their failure below.

Playwright traces are linked (``file:`` URLs of the artifacts, never inlined: a trace is megabytes)
beside the failure they record and in a list of their own, each with the command that opens it:
``python -m playwright show-trace FILE`` (the Playwright package ships it).
"""

from __future__ import annotations

import html
import math
import shlex
from datetime import UTC, datetime

from warmup.report.data import Failure, Lane, RunReport, Shot, Step, TraceFile
from warmup.times import format_duration_ms, seconds_between

SLOWEST = 15  # rows in the slowest-steps table
TITLE_ERROR_CHARS = 300  # an error is cut to this in a bar's tooltip (the failure section has it whole)
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
TICK_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


def esc(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def fmt_ts(ts: str | None) -> str:
    """``2026-11-29T07:00:00.123456Z`` as ``2026-11-29 07:00:00.123 UTC``."""
    if not ts:
        return ""
    return ts[:23].replace("T", " ") + " UTC"


def fmt_epoch(t: float) -> str:
    """Epoch seconds as ``2026-11-29 07:00:00.123 UTC``; outside years 1-9999, as seconds from the epoch."""
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23] + " UTC"
    except (ValueError, OverflowError, OSError):
        return f"{t:.3f} s from 1970-01-01 UTC"


def _offset_label(seconds: float) -> str:
    if seconds < 60 and seconds != int(seconds):
        return f"+{seconds:.1f} s"
    if seconds < 60:
        return f"+{seconds:.0f} s"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"+{m}:{s:02d}"
    h, m = divmod(m, 60)
    return f"+{h}:{m:02d}:{s:02d}"


STYLE = """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:16px 24px;color:#1d2330}
h1{font-size:20px;margin:0 0 12px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f7f9;border:1px solid #e3e6ea;padding:8px;margin:4px 0}
table{border-collapse:collapse}td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{font-weight:600;color:#556}table.grid td,table.grid th{border-bottom:1px solid #eef}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.st{font-weight:600}.st-COMPLETED{color:#1e7b3c}.st-FAILED{color:#c62828}.st-RUNNING{color:#a06800}
.st-CANCELLED,.st-INTERRUPTED{color:#8e24aa}.st-optional{color:#b8741a}.st-skipped{color:#778}.st-PENDING{color:#778}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:14px;height:10px;
margin-right:4px;vertical-align:middle}
.ok{background:#3a9d5d}.failed{background:#d63a3a}.optional{background:#e9a23b}.skipped{background:#c3cad3}
.tl{margin-top:6px;--who:200px}
.axis{position:relative;height:18px;margin-left:var(--who);border-bottom:1px solid #ccd;font-size:11px;color:#667}
.axis span{position:absolute;top:0;transform:translateX(-50%);white-space:nowrap}
.lane{display:flex;height:16px;contain:strict;width:100%}
.lane:nth-child(even){background:#f8f9fb}
.lane.bad{background:#fde9e9}
.who{width:var(--who);flex:none;font-size:12px;line-height:16px;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis;padding-right:6px}
.lane.bad .who,.lane.bad .who a{color:#c62828;font-weight:700}
.who em{font-style:normal;font-size:10px;margin-left:4px;color:#8e24aa}
.track{position:relative;flex:1;background-image:linear-gradient(to right,#dde 1px,transparent 1px);
background-size:var(--tick) 100%}
.track i{position:absolute;top:4px;height:8px;min-width:2px;border-right:1px solid #fff}
.track b{position:absolute;top:1px;height:14px;border:1px solid #99a;border-radius:3px}
.track b.r{border-color:#c62828;border-left:3px solid #c62828}
.track b.r::before{content:"\\21bb";position:absolute;left:-13px;top:-2px;font-size:11px;color:#c62828;font-weight:700}
.shot img{max-width:min(100%,720px);border:1px solid #ccd;display:block}
.note{color:#a0522d}
.failure{border-left:4px solid #d63a3a;padding:2px 0 2px 12px;margin:14px 0}
.failure.retried{border-left-color:#e9a23b}
.shots{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}
figure{margin:0}figcaption{font-size:12px;color:#556}
footer{margin-top:32px;font-size:12px;color:#778}
"""


def render(report: RunReport, *, log_name: str = "") -> str:
    run = report.run
    failures = report.failures()
    parts: list[str] = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>warmup run {esc(run['id'])}: {esc(run.get('status'))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Run <code>{esc(run['id'])}</code> <span class='st st-{esc(run.get('status'))}'>"
        f"{esc(run.get('status'))}</span></h1>",
    ]
    parts.append(_summary(report))
    parts.append(timeline_html(report, failures))
    parts.append(_slowest(report.steps()))
    images = Images()
    parts.append(_failures(failures, images))
    parts.append(_screenshots([s for s in report.shots if s.kind == "screenshot"], images))
    parts.append(_traces(report.traces))
    skipped = f", {report.lines_skipped} line(s) of it not readable, skipped" if report.lines_skipped else ""
    parts.append(
        f"<footer>From the log {esc(log_name)}: {report.events_read} events of this run{skipped}. "
        "Times are the events' timestamps (UTC); a step's bar ends at its step_finished event and is as long "
        "as its duration_ms.</footer></body></html>\n"
    )
    return "".join(parts)


def _summary(report: RunReport) -> str:
    run = report.run
    started, completed = run.get("started_at"), run.get("completed_at")
    duration = ""
    if started and completed:
        seconds = seconds_between(started, completed)
        duration = "" if seconds is None else format_duration_ms(seconds * 1000)
    elif started:
        duration = "not finished"
    task = esc(run.get("task_id"))
    if run.get("task_name") and run.get("task_name") != run.get("task_id"):
        task += f" ({esc(run.get('task_name'))})"
    counts = (
        f"{esc(run.get('accounts_total'))} total: {esc(run.get('accounts_completed'))} completed, "
        f"{esc(run.get('accounts_failed'))} failed, {esc(run.get('accounts_cancelled'))} cancelled, "
        f"{esc(run.get('accounts_interrupted'))} interrupted"
    )
    rows = [
        ("task", task),
        ("run id", f"<code>{esc(run['id'])}</code>"),
        ("status", f"<span class='st st-{esc(run.get('status'))}'>{esc(run.get('status'))}</span>"
         + (f" ({esc(run['reason'])})" if run.get("reason") else "")),
        ("started", esc(fmt_ts(started))),
        ("finished", esc(fmt_ts(completed))),
        ("duration", esc(duration)),
        ("accounts", counts),
        ("steps per account", esc(run.get("steps"))),
        ("concurrency", esc(run.get("concurrency"))),
        ("host", f"{esc(run.get('host'))} (pid {esc(run.get('pid'))})"),
        ("resumed from", f"<code>{esc(run['resumed_from'])}</code>" if run.get("resumed_from") else "-"),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<h2>Summary</h2><table class='summary'>{body}</table>"


MAX_TICKS = 12


def _tick_step(span_s: float) -> float:
    """A grid step giving at most ~10 lines over ``span_s``: a round one, or whole days beyond 10 days."""
    step = next((s for s in TICK_STEPS_S if span_s / s <= 10), None)
    if step is None:
        step = float(math.ceil(span_s / 10 / 86400) * 86400)
    return step


def _pct(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") + "%"


def timeline_html(report: RunReport, failures: list[Failure]) -> str:
    """The report's timeline section (``warmup serve``'s run page shows it too): escaped throughout."""
    t0, span = report.t0, report.t1 - report.t0
    tick = _tick_step(span)
    ticks = [
        f"<span style='left:{_pct(k * tick / span * 100)}'>{esc(_offset_label(k * tick))}</span>"
        for k in range(MAX_TICKS)
        if k * tick <= span + 1e-9
    ]
    failure_of: dict[str, int] = {}  # account -> its final failure (else its first one), for the lane's link
    for i, f in enumerate(failures):
        if f.final or f.account_id not in failure_of:
            failure_of[f.account_id] = i
    lanes = [_lane(lane, t0, span, failure_of.get(lane.account_id)) for lane in report.lanes]
    legend = (
        "<p class='legend'><span><i class='ok'></i>step ok</span><span><i class='failed'></i>step failed</span>"
        "<span><i class='optional'></i>optional step failed</span><span><i class='skipped'></i>step skipped</span>"
        "<span><i style='border:1px solid #99a'></i>an attempt</span>"
        "<span style='color:#c62828'>&#x21bb; a retry (a later attempt)</span>"
        f"<span>run start {esc(fmt_epoch(t0))}, grid every {esc(_offset_label(tick)[1:])}</span></p>"
    )
    return (
        f"<h2>Timeline</h2>{legend}<div class='tl' style='--tick:{_pct(tick / span * 100)}'>"
        f"<div class='axis'>{''.join(ticks)}</div><div class='lanes'>{''.join(lanes)}</div></div>"
    )


def _lane(lane: Lane, t0: float, span: float, failure_index: int | None) -> str:
    out: list[str] = []
    aid = esc(lane.account_id)
    for att in lane.attempts:
        end = att.end if att.end is not None else att.start
        left = (att.start - t0) / span * 100
        width = max(end - att.start, 0) / span * 100
        label = f"{lane.account_id}: attempt {att.number}: {att.status or 'running'}"
        if att.error:
            label += f": {att.error[:TITLE_ERROR_CHARS]}"
        cls = " class='r'" if att.number > 1 else ""
        out.append(f"<b{cls} style='left:{_pct(left)};width:{_pct(width)}' title='{esc(label)}'></b>")
    for step in lane.steps:
        left = max(step.start - t0, 0) / span * 100
        width = step.duration_ms / 1000 / span * 100
        out.append(
            f"<i class='{step.outcome}' style='left:{_pct(left)};width:{_pct(width)}' title='{esc(_step_title(step))}'>"
            "</i>"
        )
    status = lane.status or ""
    name = aid
    if failure_index is not None:
        name = f"<a href='#failure-{failure_index}'>{aid}</a>"
    badge = f"<em>{esc(status)}</em>" if status and status != "COMPLETED" else ""
    if lane.attempts_count > 1 or len(lane.attempts) > 1:
        badge += f"<em>{max(lane.attempts_count, len(lane.attempts))} attempts</em>"
    cls = "lane bad" if lane.failed else "lane"
    return (
        f"<div class='{cls}' data-account='{aid}' data-status='{esc(status)}'>"
        f"<div class='who' title='{aid}: {esc(status)}'>{name}{badge}</div>"
        f"<div class='track'>{''.join(out)}</div></div>"
    )


def _step_title(step: Step) -> str:
    text = (
        f"{step.account_id}: step {step.index + 1} {step.what}, attempt {step.attempt}: "
        f"{format_duration_ms(step.duration_ms)}, {step.outcome}"
    )
    if step.error:
        text += f": {step.error[:TITLE_ERROR_CHARS]}"
    return text


_OUTCOME_CLASS = {"ok": "COMPLETED", "failed": "FAILED", "optional": "optional", "skipped": "skipped"}


def _slowest(steps: list[Step]) -> str:
    top = sorted(steps, key=lambda s: s.duration_ms, reverse=True)[:SLOWEST]
    if not top:
        return "<h2>Slowest steps</h2><p>No steps in the log for this run.</p>"
    rows = "".join(
        f"<tr><td>{esc(s.account_id)}</td><td class='n'>{s.index + 1}</td><td>{esc(s.what)}</td>"
        f"<td class='n'>{s.attempt}</td><td class='n'>{esc(format_duration_ms(s.duration_ms))}</td>"
        f"<td class='st st-{_OUTCOME_CLASS[s.outcome]}'>{s.outcome}</td></tr>"
        for s in top
    )
    return (
        f"<h2>Slowest steps</h2><table class='grid slowest'><tr><th>account</th><th>step</th><th>action</th>"
        f"<th>attempt</th><th>duration</th><th>outcome</th></tr>{rows}</table>"
    )


class Images:
    """Inlines each distinct image once: a screenshot identical to one already shown links to it.

    A site that is down gives every account the same error page, so many failure screenshots can
    be the same bytes; inlining them once keeps such a report light.
    """

    def __init__(self) -> None:
        self.shown: dict[str, str] = {}  # digest -> the element id of its first inlined copy

    def html(self, shot: Shot, alt: str) -> str:
        note = f"<p class='note'>Screenshot <code>{esc(shot.path)}</code> {esc(shot.note)}</p>" if shot.note else ""
        if shot.data_uri is None:
            return note
        first = self.shown.get(shot.digest or "")
        if first is not None:
            return (f"{note}<p class='same'>Screenshot <code>{esc(shot.path)}</code>: the same image as "
                    f"<a href='#{first}'>the one shown above</a> (identical bytes, inlined once).</p>")
        ident = f"img-{len(self.shown)}"
        if shot.digest:
            self.shown[shot.digest] = ident
        img = f"<img id='{ident}' loading='lazy' decoding='async' alt='{esc(alt)}' src='{shot.data_uri}'>"
        if shot.thumbnail:
            img += (f"<p class='note'>Half size; the full screenshot is <code>{esc(shot.path)}</code> "
                    "in the artifacts folder.</p>")
        return f"{note}{img}"


def _failures(failures: list[Failure], images: Images) -> str:
    if not failures:
        return "<h2>Failures</h2><p>None.</p>"
    out = [f"<h2>Failures ({len(failures)})</h2>"]
    for i, f in enumerate(failures):
        retried = "" if f.final else " (tried again afterwards)"
        out.append(
            f"<div class='failure{'' if f.final else ' retried'}' id='failure-{i}' data-account='{esc(f.account_id)}'>"
            f"<h3>{esc(f.account_id)}, attempt {f.attempt}{retried}</h3>"
            f"<pre class='error'>{esc(f.error or '(no error text)')}</pre>"
        )
        if f.step is not None:
            s = f.step
            out.append(
                f"<p>Failing step: <b>{s.index + 1}</b> <code>{esc(s.action)}</code> "
                f"after {esc(format_duration_ms(s.duration_ms))}"
                f", at {esc(fmt_epoch(s.end))}</p>"
            )
            if s.error and s.error != f.error:
                out.append(f"<pre class='step-error'>{esc(s.error)}</pre>")
            if s.url:
                out.append(f"<p>URL: <code class='url'>{esc(s.url)}</code></p>")
        if f.shot is not None:
            out.append(f"<div class='shot'>{images.html(f.shot, f'screenshot of {f.account_id} when it failed')}</div>")
        else:
            out.append("<p class='note'>No screenshot was saved for this failure.</p>")
        if f.trace is not None:
            out.append(f"<p class='trace'>{trace_html(f.trace)}</p>")
        out.append("</div>")
    return "".join(out)


def _screenshots(shots: list[Shot], images: Images) -> str:
    if not shots:
        return ""
    figures = "".join(
        f"<figure class='shot'>{images.html(s, f'{s.account_id}: {s.path}')}<figcaption>{esc(s.account_id)}: "
        f"<code>{esc(s.path)}</code> ({esc(fmt_ts(s.ts))})</figcaption></figure>"
        for s in shots
    )
    return f"<h2>Screenshots ({len(shots)})</h2><div class='shots'>{figures}</div>"


SHOW_TRACE = "python -m playwright show-trace"  # the Playwright package's trace viewer


def show_trace_command(trace: TraceFile) -> str:
    """The shell command that opens ``trace`` in Playwright's trace viewer."""
    return f"{SHOW_TRACE} {shlex.quote(str(trace.file if trace.file is not None else trace.path))}"


def trace_html(trace: TraceFile) -> str:
    """A link to the trace and the command to open it, or the note saying why it cannot be."""
    if trace.file is None:
        return f"Playwright trace <code>{esc(trace.path)}</code> <span class='note'>{esc(trace.note)}</span>"
    return (
        f"Playwright trace: <a class='trace' href='{esc(trace.file.as_uri())}'>{esc(trace.path)}</a>; "
        f"open it with <code class='cmd'>{esc(show_trace_command(trace))}</code>"
    )


def _traces(traces: list[TraceFile]) -> str:
    if not traces:
        return ""
    items = "".join(
        f"<li data-account='{esc(t.account_id)}'>{esc(t.account_id)}, attempt {esc(t.attempt)}: {trace_html(t)}</li>"
        for t in traces
    )
    return (
        f"<h2>Traces ({len(traces)})</h2><p>Each is a Playwright trace of one attempt, with every secret of the task "
        "redacted (its screenshots and other images are left out when the task has secrets). The trace viewer "
        f"opens one: <code>{esc(SHOW_TRACE)} FILE</code>.</p><ul class='traces'>{items}</ul>"
    )
