"""Build widgets: trace what is stale, render what changed, keep the last good output.

For each widget, `build` compares its trace key and render key (see fingerprint.py)
with the manifest of the last successful build: an unchanged widget is neither traced
nor rendered. A widget whose trace raises, or returns something malformed, is reported
in one line and its previous files stay in place.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import fingerprint, paths, registry, render, tracejson
from .registry import Sheet, Widget


class WidgetError(Exception):
    """One widget could not be built; the message is one line naming it and the cause."""


@dataclass
class BuildReport:
    traced: list[str] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def trace_path(name: str) -> Path:
    return paths.WIDGET_OUT / f"{name}.json"


def html_path(name: str) -> Path:
    return paths.WIDGET_OUT / f"{name}.html"


def fallback_path(name: str) -> Path:
    return paths.WIDGET_OUT / f"{name}.fallback.html"


def load_manifest() -> dict:
    try:
        return json.loads(paths.MANIFEST.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_atomic(path: Path, content: bytes) -> None:
    """Replace `path` in one step, so a crash never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the site is served to everyone
    os.replace(tmp, path)


def _check_trace(widget: Widget | Sheet, trace: object) -> dict:
    keys = {"facts", "tables"} if isinstance(widget, Sheet) else {"data", "facts"}
    if not isinstance(trace, dict) or set(trace) != keys:
        raise WidgetError(f"widget {widget.name}: trace() must return a dict with keys {sorted(keys)}")
    bad = [key for key, value in trace["facts"].items() if not isinstance(value, (str, int, float))]
    bad += [key for key, value in trace.get("tables", {}).items() if not isinstance(value, str)]
    if bad:
        raise WidgetError(f"widget {widget.name}: facts must be numbers or strings and tables Markdown, not {bad}")
    return trace


def run_trace(widget: Widget | Sheet) -> bytes:
    """Import the widget's module, run its trace and return canonical JSON bytes."""
    try:
        module = importlib.import_module(widget.module)
        trace = module.trace()
    except WidgetError:
        raise
    except Exception as exc:  # any failure of project code becomes one reported line
        where = traceback.extract_tb(exc.__traceback__)[-1]
        location = f"{Path(where.filename).name}:{where.lineno}"
        raise WidgetError(f"widget {widget.name}: trace failed at {location}: {type(exc).__name__}: {exc}") from exc
    try:
        return tracejson.dumps(_check_trace(widget, trace))
    except (TypeError, ValueError) as exc:
        raise WidgetError(f"widget {widget.name}: trace is not plain data: {exc}") from exc


def _outputs(widget: Widget | Sheet) -> list[Path]:
    if isinstance(widget, Sheet):
        return [trace_path(widget.name)]
    return [trace_path(widget.name), html_path(widget.name), fallback_path(widget.name)]


def stale(widget: Widget | Sheet, manifest: dict | None = None) -> bool:
    """True when the widget's code, templates or runtime changed since its last good build."""
    entry = (load_manifest() if manifest is None else manifest).get(widget.name)
    if entry is None or not all(path.is_file() for path in _outputs(widget)):
        return True
    if entry["trace_key"] != fingerprint.trace_key(widget):
        return True
    if isinstance(widget, Sheet):
        return False
    return entry["render_key"] != fingerprint.render_key(widget, trace_path(widget.name).read_bytes())


def _build_sheet(sheet: Sheet, manifest: dict, report: BuildReport, force: bool) -> None:
    trace_key = fingerprint.trace_key(sheet)
    if force or manifest.get(sheet.name, {}).get("trace_key") != trace_key or not trace_path(sheet.name).is_file():
        _write_atomic(trace_path(sheet.name), run_trace(sheet))
        report.traced.append(sheet.name)
    else:
        report.fresh.append(sheet.name)
    manifest[sheet.name] = {"trace_key": trace_key}


def build_one(widget: Widget | Sheet, manifest: dict, report: BuildReport, force: bool = False) -> None:
    if isinstance(widget, Sheet):
        return _build_sheet(widget, manifest, report, force)
    entry = manifest.get(widget.name, {})
    trace_key = fingerprint.trace_key(widget)
    if force or entry.get("trace_key") != trace_key or not trace_path(widget.name).is_file():
        trace_bytes = run_trace(widget)
        report.traced.append(widget.name)
    else:
        trace_bytes = trace_path(widget.name).read_bytes()
    render_key = fingerprint.render_key(widget, trace_bytes)
    if force or entry.get("render_key") != render_key or not html_path(widget.name).is_file():
        try:
            html, fallback = render.render(widget, json.loads(trace_bytes))
        except Exception as exc:  # jinja raises many kinds; report them in one line
            raise WidgetError(f"widget {widget.name}: template {widget.template} failed: {type(exc).__name__}: {exc}") from exc
        # Only now, with both files in hand, replace the last good output.
        _write_atomic(trace_path(widget.name), trace_bytes)
        _write_atomic(html_path(widget.name), html.encode())
        _write_atomic(fallback_path(widget.name), fallback.encode())
        report.rendered.append(widget.name)
    elif widget.name not in report.traced:
        report.fresh.append(widget.name)
    manifest[widget.name] = {"trace_key": trace_key, "render_key": render_key}


def build(names: list[str] | None = None, force: bool = False, progress=None) -> BuildReport:
    """Build the named widgets and sheets (all when `names` is empty). Raises UnknownWidget first.

    `progress`, if given, is called with one line before and after each entry that has
    work to do ("[2/9] seq2seq ...", then "... done in 6.9 s"), so a long first build says
    what it is doing."""
    widgets = [registry.get_entry(name) for name in names] if names else list(registry.entries())
    manifest = load_manifest()
    report = BuildReport()
    todo = [w for w in widgets if force or stale(w, manifest)]
    start = time.perf_counter()
    for widget in widgets:
        began = time.perf_counter()
        if progress and widget in todo:
            progress(f"[{todo.index(widget) + 1}/{len(todo)}] {widget.name} ...")
        try:
            build_one(widget, manifest, report, force)
        except WidgetError as exc:
            report.failed[widget.name] = str(exc)
        if progress and widget in todo:
            what = "failed" if widget.name in report.failed else "done"
            now = time.perf_counter()
            progress(f"[{todo.index(widget) + 1}/{len(todo)}] {widget.name} {what} in {now - began:.1f} s "
                     f"({now - start:.0f} s so far)")
    _write_atomic(paths.MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return report
