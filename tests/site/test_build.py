"""The built site, read as files: a strict build, links (raw HTML included, which
`mkdocs build --strict` does not check), nothing loaded from another host, math typeset
at build time (KaTeX's stylesheet only where used, never its script), every widget
published and every embed well formed."""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from vizgen import paths
from vizgen.registry import WIDGETS

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr"}
# Elements whose URL attribute the link check follows.
LINK_ATTRS = {"a": "href", "link": "href", "script": "src", "img": "src", "iframe": "src", "source": "src"}
CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""", re.I)
CSS_IMPORT = re.compile(r"""@import\s+(?:"([^"]*)"|'([^']*)')""", re.I)
EXTERNAL = re.compile(r"^(?:https?:)?//", re.I)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)
GOOGLE_FONTS = re.compile(r"fonts\.(?:googleapis|gstatic)\.com", re.I)


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)]


class _TreeBuilder(HTMLParser):
    """A forgiving DOM: an end tag closes up to its open element, or is ignored."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.styles: list[str] = []  # <style> blocks and style="" attributes
        self._in_style = False

    def _open(self, tag, attrs, void):
        node = Node(tag, dict(attrs), parent=self.stack[-1])
        self.stack[-1].children.append(node)
        if node.attrs.get("style"):
            self.styles.append(node.attrs["style"])
        if not void and tag not in VOID:
            self.stack.append(node)
        self._in_style = tag == "style"

    def handle_starttag(self, tag, attrs):
        self._open(tag, attrs, void=False)

    def handle_startendtag(self, tag, attrs):
        self._open(tag, attrs, void=True)

    def handle_endtag(self, tag):
        self._in_style = False
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


@dataclass
class Page:
    rel: str  # path relative to the site root, posix
    root: Node
    styles: list[str]

    @property
    def ids(self) -> set[str]:
        found = set()
        for node in self.root.iter():
            if node.attrs.get("id"):
                found.add(node.attrs["id"])
            if node.tag == "a" and node.attrs.get("name"):
                found.add(node.attrs["name"])
        return found

    def stylesheets(self) -> list[str]:
        return [n.attrs["href"] for n in self.root.find_all("link")
                if "stylesheet" in (n.attrs.get("rel") or "").lower().split() and n.attrs.get("href")]

    def scripts(self) -> list[str]:
        return [n.attrs["src"] for n in self.root.find_all("script") if n.attrs.get("src")]


@lru_cache(maxsize=None)
def _parse(path: Path, site: Path) -> Page:
    builder = _TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    builder.close()
    return Page(path.relative_to(site).as_posix(), builder.root, builder.styles)


def html_pages(site: Path) -> list[Page]:
    return [_parse(p, site) for p in sorted(site.rglob("*.html"))]


def content_pages(site: Path) -> list[Page]:
    """Posts and the landing page: every page but 404, widgets and assets."""
    return [p for p in html_pages(site)
            if p.rel != "404.html" and not p.rel.startswith(("assets/", "widgets/"))]


def resolve(site: Path, page_rel: str, url: str) -> tuple[Path | None, str]:
    """Map a local URL found in `page_rel` to (file in the site or None, fragment)."""
    parts = urlsplit(url)
    fragment = unquote(parts.fragment)
    path = unquote(parts.path)
    if not path:
        return site / page_rel, fragment
    if path.startswith("/"):  # root-absolute (Material's 404 page, without site_url)
        target = posixpath.normpath(path.lstrip("/") or ".")
    else:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page_rel), path))
    if target == ".." or target.startswith("../"):
        return None, fragment  # escapes the site
    file = site / target if target != "." else site
    if path.endswith("/") or file.is_dir():
        file = file / "index.html"
    return (file if file.is_file() else None), fragment


def css_urls(text: str) -> list[str]:
    found = [next(g for g in m.groups() if g is not None) for m in CSS_URL.finditer(text)]
    found += [a or b for a, b in CSS_IMPORT.findall(text)]
    return found


def is_local(url: str) -> bool:
    return bool(url) and not EXTERNAL.match(url) and not SCHEME.match(url)


# --------------------------------------------------------------------------- build


def test_strict_build_passes_without_warnings(built_site):
    site, log = built_site
    assert "Documentation built" in log, log
    assert not re.search(r"^\s*(WARNING|ERROR)\b", log, re.M), log
    assert (site / "index.html").is_file()


# --------------------------------------------------------------------------- links


def test_every_local_link_resolves(site_path):
    """Every relative href/src in every built page (raw HTML too) names a file in the
    site, and every #fragment into a built page names an id there."""
    pages = html_pages(site_path)
    assert pages
    broken = []
    checked = 0
    for page in pages:
        for node in page.root.iter():
            attr = LINK_ATTRS.get(node.tag)
            url = node.attrs.get(attr) if attr else None
            if url is None:
                continue
            url = url.strip()
            if not url or not is_local(url):
                continue  # external links (papers), mailto:, data:, javascript:
            checked += 1
            target, fragment = resolve(site_path, page.rel, url)
            if target is None:
                broken.append(f"{page.rel}: <{node.tag} {attr}={url!r}> names no file in the site")
                continue
            if fragment and target.suffix == ".html":
                if fragment not in _parse(target, site_path).ids:
                    broken.append(f"{page.rel}: <{node.tag} {attr}={url!r}>: no id {fragment!r} in "
                                  f"{target.relative_to(site_path).as_posix()}")
    assert checked, "no local links found: is the parser broken?"
    assert not broken, "\n".join(broken)


def test_stylesheets_reference_only_files_that_exist(site_path):
    """url() and @import inside the site's CSS (files, <style> blocks, style="") resolve."""
    broken = []
    for css in sorted(site_path.rglob("*.css")):
        rel = css.relative_to(site_path).as_posix()
        for url in css_urls(css.read_text(encoding="utf-8", errors="replace")):
            if is_local(url) and resolve(site_path, rel, url)[0] is None:
                broken.append(f"{rel}: url({url})")
    for page in html_pages(site_path):
        for text in page.styles:
            for url in css_urls(text):
                if is_local(url) and resolve(site_path, page.rel, url)[0] is None:
                    broken.append(f"{page.rel}: url({url})")
    assert not broken, "\n".join(broken)


# --------------------------------------------------------------------------- nothing external


def test_nothing_is_loaded_from_another_host(site_path):
    """No script, stylesheet, image, frame or CSS url() points at another host
    (external <a href> links to papers are fine)."""
    offenders = []
    for page in html_pages(site_path):
        for node in page.root.iter():
            rels = (node.attrs.get("rel") or "").lower().split()
            if node.tag in ("script", "img", "iframe", "source", "video", "audio", "embed"):
                urls = [node.attrs.get("src")]
                if node.attrs.get("srcset"):
                    urls += [part.split()[0] for part in node.attrs["srcset"].split(",") if part.strip()]
            elif node.tag == "link" and {"stylesheet", "preload", "modulepreload", "icon"} & set(rels):
                urls = [node.attrs.get("href")]
            else:
                continue
            for url in urls:
                if url and EXTERNAL.match(url.strip()):
                    offenders.append(f"{page.rel}: <{node.tag}> loads {url}")
        for text in page.styles:
            offenders += [f"{page.rel}: inline CSS url({u})" for u in css_urls(text) if EXTERNAL.match(u)]
    for css in sorted(site_path.rglob("*.css")):
        rel = css.relative_to(site_path).as_posix()
        text = css.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{rel}: url({u})" for u in css_urls(text) if EXTERNAL.match(u)]
    assert not offenders, "\n".join(offenders)


def test_no_google_fonts(site_path):
    offenders = [p.relative_to(site_path).as_posix() for p in sorted(site_path.rglob("*"))
                 if p.suffix in (".html", ".css", ".js", ".json") and p.is_file()
                 and GOOGLE_FONTS.search(p.read_text(encoding="utf-8", errors="replace"))]
    assert not offenders, f"Google Fonts referenced in: {offenders}"


# --------------------------------------------------------------------------- math


def _loads(page: Page, name: str) -> bool:
    return any(posixpath.basename(urlsplit(u).path) == name for u in page.scripts() + page.stylesheets())


def test_math_is_typeset_at_build_time_and_no_page_loads_katex_js(site_path):
    wrong = []
    for page in html_pages(site_path):
        has_math = bool(page.root.find_all(cls="katex"))
        if page.root.find_all(cls="arithmatex"):
            wrong.append(f"{page.rel}: math left for the browser to typeset")
        if any("katex" in posixpath.basename(urlsplit(u).path) for u in page.scripts()):
            wrong.append(f"{page.rel}: loads KaTeX's JavaScript")
        if _loads(page, "katex.min.css") != has_math:
            wrong.append(f"{page.rel}: math={has_math} but katex.min.css loaded={not has_math}")
    assert not wrong, "\n".join(wrong)


def test_unused_assets_are_not_published(site_path):
    vendor = site_path / paths.VENDOR_URL
    assert not (vendor / "katex" / "katex.min.js").exists()  # runs at build time only
    assert not list(site_path.rglob("mermaid*")) and not list(site_path.rglob("auto-render*"))
    assert not (site_path / "data" / "seq2seq").exists()  # the build's weights, not the reader's


# --------------------------------------------------------------------------- widgets


@pytest.mark.parametrize("widget", WIDGETS, ids=lambda w: w.name)
def test_widget_is_published(site_path, widget):
    page = site_path / paths.WIDGET_URL.format(name=widget.name)
    trace = site_path / paths.TRACE_URL.format(name=widget.name)
    assert page.is_file(), f"{page} missing"
    assert trace.is_file(), f"{trace} missing"
    data = json.loads(trace.read_text())
    assert set(data) == {"data", "facts"}, sorted(data)
    parsed = _parse(page, site_path)
    runtime = f"{paths.ASSET_URL}/runtime/viz.js"
    assert any(resolve(site_path, parsed.rel, src)[0] == site_path / runtime for src in parsed.scripts()), \
        f"{parsed.rel} does not load the shared runtime {runtime}"
    # Sequential widgets have the player; the others are driven by data-control inputs.
    controls = [el for el in parsed.root.iter() if "data-control" in el.attrs]
    assert parsed.root.find_all(cls="viz-player") or controls, f"{parsed.rel} has neither a player nor controls"
    assert parsed.root.find_all(cls="viz-legend"), f"{parsed.rel} has no on-canvas legend"
    notes = parsed.root.find_all(cls="viz-model-note")
    assert bool(notes) == widget.model, f"{parsed.rel}: a model says so on the canvas, a measurement does not"


def test_embeds_are_lazy_titled_and_labelled(site_path):
    figures = [(page, fig) for page in content_pages(site_path) for fig in page.root.find_all("figure", "viz-embed")]
    if not figures:
        pytest.skip("no page embeds a widget yet")
    known = {w.name for w in WIDGETS}
    problems = []
    for page, fig in figures:
        where = f"{page.rel} [data-widget={fig.attrs.get('data-widget')!r}]"
        if fig.attrs.get("data-widget") not in known:
            problems.append(f"{where}: not a registered widget")
        frames = fig.find_all("iframe")
        if len(frames) != 1:
            problems.append(f"{where}: {len(frames)} iframes")
            continue
        frame = frames[0].attrs
        if frame.get("loading") != "lazy":
            problems.append(f"{where}: iframe loading={frame.get('loading')!r}, not 'lazy'")
        if not (frame.get("title") or "").strip():
            problems.append(f"{where}: iframe has no title")
        if "allowfullscreen" not in frame:
            problems.append(f"{where}: iframe lacks allowfullscreen")
        expected = site_path / paths.WIDGET_URL.format(name=fig.attrs.get("data-widget"))
        if resolve(site_path, page.rel, frame.get("src") or "")[0] != expected:
            problems.append(f"{where}: iframe src={frame.get('src')!r} is not its widget page")
        bars = fig.find_all(cls="viz-embed-bar")
        buttons = [n for bar in bars for n in bar.iter() if n.tag == "button" or "viz-embed-button" in n.classes]
        if not buttons:
            problems.append(f"{where}: no toolbar with buttons")
        for button in buttons:
            if not (button.attrs.get("aria-label") or "").strip():
                problems.append(f"{where}: toolbar <{button.tag} class={button.attrs.get('class')!r}> has no aria-label")
    assert not problems, "\n".join(problems)
