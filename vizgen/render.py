"""Render a trace into its widget page with jinja2.

Every widget page extends `templates/base.html`, which carries the shared chrome
(toolbar, player, legend slot, trace link, no-script fallback). Pages live at
`widgets/<name>.html` and reach shared assets by relative URL, so they work
embedded, opened alone, and offline.
"""

from __future__ import annotations

import json
from functools import lru_cache

import jinja2

from . import fingerprint, paths
from .registry import Widget


def _relative_from_widget(url: str) -> str:
    return "../" + url  # widget pages sit one folder below the site root


@lru_cache(maxsize=None)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths.TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the build
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(asset=asset_url, vendor=vendor_url)
    return env


def asset_url(path: str) -> str:
    """URL of a file under vizgen/static/runtime (or the generated tokens.css), cache-busted."""
    source = paths.PACKAGE / "theme.py" if path == "tokens.css" else paths.STATIC / "runtime" / path
    url = f"{paths.ASSET_URL}/{path}" if path == "tokens.css" else f"{paths.ASSET_URL}/runtime/{path}"
    return f"{_relative_from_widget(url)}?v={fingerprint.asset_version(source)}"


def vendor_url(path: str) -> str:
    return _relative_from_widget(f"{paths.VENDOR_URL}/{path}")


def _inline_json(value) -> str:
    # Safe inside <script type="application/json">: nothing can close the tag.
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _context(widget: Widget, trace: dict) -> dict:
    return dict(
        widget=widget,
        data=trace["data"],
        facts=trace["facts"],
        trace_inline=_inline_json(trace["data"]),
        trace_url=f"{widget.name}.json",
        command=f"vizgen build {widget.name}",
    )


def render(widget: Widget, trace: dict) -> tuple[str, str]:
    """The widget page, and its no-JavaScript fallback alone (the embed inlines it)."""
    template = _environment().get_template(widget.template)
    context = _context(widget, trace)
    fallback = "".join(template.blocks["fallback"](template.new_context(context)))
    return template.render(context), fallback.strip() + "\n"
