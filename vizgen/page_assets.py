"""Finish each built page: typeset its math at build time and link KaTeX's stylesheet,
from the site itself, only on pages that have math (no page loads KaTeX's JavaScript,
see mathrender.py); and name Material's search dialog for screen readers."""

from __future__ import annotations

from . import mathrender, paths


_SEARCH_DIALOG = '<div class="md-search" data-md-component="search" role="dialog">'


class PageAssetError(ValueError):
    pass


def add_page_assets(html: str, root: str) -> str:
    """`root` is the relative URL from the page to the site root ('' or '../' ...)."""
    try:
        html = mathrender.render_html(html)
    except mathrender.MathError as exc:
        raise PageAssetError(str(exc)) from None
    # Material's search overlay is a role="dialog" without an accessible name.
    html = html.replace(_SEARCH_DIALOG, _SEARCH_DIALOG[:-1] + ' aria-label="Search the series">', 1)
    if 'class="katex' in html:
        link = f'<link rel="stylesheet" href="{root}{paths.VENDOR_URL}/katex/katex.min.css">'
        html = html.replace("</head>", link + "</head>", 1)
    return html
