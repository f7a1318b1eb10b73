"""Load KaTeX and mermaid only on the pages that use them, from the site itself.

Material would fetch mermaid from a CDN unless a `mermaid` global already exists when
its bundle runs, so our copy goes in just before the bundle. A page with no math and
no diagram loads neither (they are most of a page's weight otherwise).
"""

from __future__ import annotations

from . import paths


class PageAssetError(ValueError):
    pass


def add_page_assets(html: str, root: str) -> str:
    """`root` is the relative URL from the page to the site root ('' or '../' ...)."""
    vendor = root + paths.VENDOR_URL
    if 'class="arithmatex"' in html:
        head = f'<link rel="stylesheet" href="{vendor}/katex/katex.min.css">'
        scripts = (f"{vendor}/katex/katex.min.js", f"{vendor}/katex/auto-render.min.js",
                   f"{root}{paths.ASSET_URL}/site/katex-init.js")
        tail = "".join(f'<script defer src="{src}"></script>' for src in scripts)
        html = html.replace("</head>", head + "</head>", 1).replace("</body>", tail + "</body>", 1)
    if 'class="mermaid"' in html:
        bundle = f'<script src="{root}assets/javascripts/bundle.'
        if bundle not in html:
            raise PageAssetError("cannot find Material's bundle script to load mermaid before it")
        html = html.replace(bundle, f'<script src="{vendor}/mermaid/mermaid.min.js"></script>' + bundle, 1)
    return html
