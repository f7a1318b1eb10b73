"""Typeset a page's math at build time and link KaTeX's stylesheet, from the site itself,
only on pages that have math. No page loads KaTeX's JavaScript (see mathrender.py)."""

from __future__ import annotations

from . import mathrender, paths


class PageAssetError(ValueError):
    pass


def add_page_assets(html: str, root: str) -> str:
    """`root` is the relative URL from the page to the site root ('' or '../' ...)."""
    try:
        html = mathrender.render_html(html)
    except mathrender.MathError as exc:
        raise PageAssetError(str(exc)) from None
    if 'class="katex' in html:
        link = f'<link rel="stylesheet" href="{root}{paths.VENDOR_URL}/katex/katex.min.css">'
        html = html.replace("</head>", link + "</head>", 1)
    return html
