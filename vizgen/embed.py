"""The Markdown placeholders a post may use, expanded before Markdown is parsed.

    {{ widget online-softmax "Caption, in Markdown-free text." }}   (alone on a line)
    {{ online-softmax.m_0 }}                                        (a computed number)
    {{ hardware.a100_ridge_fp16 }}                                  (one from a sheet)
    {{ table hardware.gpu_specs }}                                  (a computed table, alone on a line)
    {{ series }}                                                    (the four parts)

A number the code computes is written in prose only through a fact placeholder, so
text and figures cannot disagree. Unknown names raise EmbedError naming the cause;
the plugin adds the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import paths, registry
from .registry import Widget

WIDGET_LINE = re.compile(r'^[ \t]*\{\{\s*widget\s+([a-z0-9-]+)\s+"([^"]*)"\s*\}\}[ \t]*$', re.M)
FACT = re.compile(r"\{\{\s*([a-z0-9]+(?:-[a-z0-9]+)*)\.([A-Za-z0-9_]+)\s*\}\}")
SERIES = re.compile(r"^[ \t]*\{\{\s*series\s*\}\}[ \t]*$", re.M)
TABLE_LINE = re.compile(r"^[ \t]*\{\{\s*table\s+([a-z0-9-]+)\.([A-Za-z0-9_]+)\s*\}\}[ \t]*$", re.M)
LEFTOVER = re.compile(r"\{\{\s*(widget\b|series\b|table\b|[a-z0-9-]+\.)[^}]*\}\}")

_NEW_TAB = ('<svg viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" '
            'stroke-linecap="round" stroke-linejoin="round"><path d="M14 4h6v6"/><path d="M20 4l-9 9"/>'
            '<path d="M19 14v5a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1h5"/></svg>')
_FULLSCREEN = ('<svg viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" '
               'stroke-linecap="round" stroke-linejoin="round"><path d="M4 9V4h5"/><path d="M20 9V4h-5"/>'
               '<path d="M4 15v5h5"/><path d="M20 15v5h-5"/></svg>')


class EmbedError(ValueError):
    pass


@dataclass(frozen=True)
class Part:
    number: int
    slug: str
    title: str
    question: str


def embed_html(widget: Widget, caption: str, to_site_root: str, fallback: str) -> str:
    """The figure that frames a widget: toolbar, lazily loaded 16:9 frame, caption."""
    src = to_site_root + paths.WIDGET_URL.format(name=widget.name)
    trace = to_site_root + paths.TRACE_URL.format(name=widget.name)
    title = html.escape(widget.title)
    return (
        f'<figure class="viz-embed" data-widget="{widget.name}" style="--viz-phone-aspect: {widget.phone_aspect}">\n'
        f'<div class="viz-embed-bar"><span class="viz-embed-label">Interactive · Part {widget.part}</span>'
        f'<span class="viz-embed-title">{title}</span>'
        f'<a class="viz-embed-button" href="{src}" target="_blank" rel="noopener" aria-label="Open in a new tab">'
        f'{_NEW_TAB}<span class="sr-only">Open in a new tab</span></a>'
        f'<button class="viz-embed-button" type="button" data-viz-fullscreen aria-label="Fullscreen">'
        f'{_FULLSCREEN}<span class="sr-only">Fullscreen</span></button></div>\n'
        f'<div class="viz-embed-frame"><iframe src="{src}" title="{title}" loading="lazy" allowfullscreen></iframe></div>\n'
        # Without JavaScript the frame would stay blank: show the trace as a table instead.
        f'<noscript><style>.viz-embed-frame{{display:none}}</style>'
        f'<div class="viz-embed-fallback">{fallback}</div></noscript>\n'
        f'<figcaption>{html.escape(caption)} <span class="viz-embed-source"><a href="{trace}">Trace data</a> · '
        f'regenerate: <code>vizgen build {widget.name}</code></span></figcaption>\n'
        "</figure>"
    )


def expand(
    markdown: str,
    *,
    to_site_root: str,
    facts: Callable[[str], Mapping[str, object]],
    tables: Callable[[str], Mapping[str, str]],
    fallback: Callable[[str], str],
    series: list[Part],
    link_to: Callable[[str], str | None],
) -> tuple[str, list[str]]:
    """Expand every placeholder; return the new Markdown and the widgets it embeds.

    `facts(name)` and `tables(name)` raise EmbedError for a name that is neither a
    widget nor a sheet."""
    used: list[str] = []

    def widget(match: re.Match) -> str:
        name, caption = match.group(1), match.group(2)
        try:
            item = registry.get(name)
        except registry.UnknownWidget as exc:
            raise EmbedError(str(exc)) from None
        used.append(name)
        return "\n" + embed_html(item, caption, to_site_root, fallback(name)) + "\n"

    def lookup(source: Callable[[str], Mapping], what: str, name: str, key: str):
        known = source(name)
        if key not in known:
            raise EmbedError(f"{name} has no {what} {key!r} (it has: {', '.join(sorted(known))})")
        return known[key]

    def fact(match: re.Match) -> str:
        return str(lookup(facts, "fact", *match.groups()))

    def table(match: re.Match) -> str:
        return "\n" + lookup(tables, "table", *match.groups()) + "\n"

    def series_list(_: re.Match) -> str:
        items = []
        for part in series:
            title = f"**Part {part.number} — {part.title}**"
            target = link_to(part.slug)  # None until the post exists
            if target:
                title = f"[{title}]({target})"
            items.append(f"{part.number}. {title}  \n   {part.question}")
        return "\n".join(items)

    markdown = WIDGET_LINE.sub(widget, markdown)
    markdown = TABLE_LINE.sub(table, markdown)
    markdown = SERIES.sub(series_list, markdown)
    markdown = FACT.sub(fact, markdown)
    leftover = LEFTOVER.search(markdown)
    if leftover:
        raise EmbedError(f"malformed placeholder {leftover.group(0)!r}")
    return markdown, used
