"""Math typeset at build time, so pages carry KaTeX's stylesheet and fonts but none of
its JavaScript (on a phone, running KaTeX was most of a post's blocking time).

pymdownx.arithmatex (generic mode) leaves each formula as
``<span class="arithmatex">\\(...\\)</span>`` or ``<div class="arithmatex">\\[...\\]</div>``;
`render_html` replaces each with KaTeX's HTML + MathML, produced by the vendored
katex.min.js running in an embedded V8 (mini-racer): the same KaTeX as before, the
same output on every machine. A formula KaTeX cannot parse stops the build with one
line naming it. Typeset formulas are kept in build/vizgen/katex.json (keyed by the
KaTeX script's hash), so a rebuild with no new formula never starts V8.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import tempfile
from functools import lru_cache

from . import paths

KATEX_JS = paths.STATIC / "vendor" / "katex" / "katex.min.js"
# Published pages need only the stylesheet and fonts; the script runs here, at build time.
BUILD_ONLY = ("katex/katex.min.js",)
CACHE = paths.BUILD / "katex.json"

# What arithmatex writes: the wrapper, then the TeX between \( \) or \[ \] (HTML-escaped).
_FORMULA = re.compile(r'<(span|div) class="arithmatex">\s*\\([(\[])(.*?)\\[)\]]\s*</\1>', re.S)


class MathError(ValueError):
    """A formula KaTeX cannot typeset; the message names it."""


@lru_cache(maxsize=1)
def _katex():
    from py_mini_racer import MiniRacer  # imported on first use: most commands never typeset

    context = MiniRacer()
    context.eval(KATEX_JS.read_text(encoding="utf-8"))
    return context


def _typeset(tex: str, display: bool) -> str:
    try:
        return _katex().call("katex.renderToString", tex, {"displayMode": display, "throwOnError": True,
                                                           "output": "htmlAndMathml"})
    except Exception as exc:  # mini-racer raises its own JSEvalException; keep KaTeX's line only
        reason = next((line for line in str(exc).splitlines() if "ParseError" in line), str(exc).splitlines()[0])
        raise MathError(f"cannot typeset ${tex}$: {reason.split('ParseError: ')[-1]}") from None


class _Cache:
    """Typeset formulas by (display, TeX), for one version of the KaTeX script."""

    def __init__(self):
        self.version = hashlib.sha256(KATEX_JS.read_bytes()).hexdigest()[:16]
        try:
            saved = json.loads(CACHE.read_text())
        except (OSError, ValueError):
            saved = {}
        self.formulas = saved.get("formulas", {}) if saved.get("katex") == self.version else {}
        self.dirty = False

    def get(self, tex: str, display: bool) -> str:
        key = ("D" if display else "I") + tex
        if key not in self.formulas:
            self.formulas[key] = _typeset(tex, display)
            self.dirty = True
        return self.formulas[key]

    def save(self) -> None:
        if not self.dirty:
            return
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=CACHE.parent, prefix=".katex.")
        with os.fdopen(fd, "w") as handle:
            json.dump({"katex": self.version, "formulas": self.formulas}, handle, sort_keys=True)
        os.replace(tmp, CACHE)
        self.dirty = False


@lru_cache(maxsize=1)
def _cache() -> _Cache:
    return _Cache()


def render_tex(tex: str, display: bool) -> str:
    """KaTeX's HTML for one formula (TeX source, not escaped)."""
    return _cache().get(tex, display)


def save_cache() -> None:
    """Keep what this build typeset for the next one (called once a build is done)."""
    _cache().save()


def _replace(match: re.Match) -> str:
    tag, opener, source = match.groups()
    display = opener == "["
    rendered = render_tex(html.unescape(source).strip(), display)
    # Display math keeps a block of its own that scrolls sideways on a phone (site.css).
    return f'<div class="math-display">{rendered}</div>' if display else rendered


def has_math(page_html: str) -> bool:
    return 'class="arithmatex"' in page_html


def render_html(page_html: str) -> str:
    """Every arithmatex formula in `page_html` typeset by KaTeX."""
    return _FORMULA.sub(_replace, page_html) if has_math(page_html) else page_html
