"""The MkDocs plugin: keeps widgets built, publishes them with the shared assets,
expands the Markdown placeholders (see embed.py) and typesets math at build time,
linking KaTeX's stylesheet only on pages that have math.

Widgets are traced in a child process (`python -m vizgen build`), so `mkdocs serve`
always runs the code as it is on disk and a crashing trace cannot take the server
down; the staleness check before it is cheap and imports nothing heavy.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
import posixpath
import subprocess
import sys
import tempfile

from mkdocs.config import base
from mkdocs.config import config_options as c
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

from . import build, embed, mathrender, page_assets, paths, registry, theme

log = logging.getLogger("mkdocs.plugins.vizgen")


class PartConfig(base.Config):
    number = c.Type(int)
    slug = c.Type(str)
    title = c.Type(str)
    question = c.Type(str)


class VizgenConfig(base.Config):
    enabled = c.Type(bool, default=True)
    # The series, in order; a part links from `{{ series }}` once docs/<slug>.md exists.
    series = c.ListOfItems(c.SubConfig(PartConfig), default=[])


class VizgenPlugin(BasePlugin[VizgenConfig]):
    def on_startup(self, *, command, dirty):
        self.serving = command == "serve"

    def on_config(self, config):
        if not self.config.enabled:
            return
        self.parts = [embed.Part(**dict(part)) for part in self.config.series]
        config.extra_css[:0] = [f"{paths.ASSET_URL}/tokens.css", f"{paths.ASSET_URL}/site/site.css"]
        config.extra_javascript += [f"{paths.ASSET_URL}/site/embed.js", f"{paths.ASSET_URL}/site/quiz.js"]
        return config

    def on_serve(self, server, *, config, builder):
        if self.config.enabled:
            for folder in ("kernels", "vizgen"):
                server.watch(str(paths.ROOT / folder))
        return server

    def on_pre_build(self, *, config):
        if not self.config.enabled:
            return
        _trace.cache_clear()  # traces may change between builds under `mkdocs serve`
        stale = [entry.name for entry in registry.entries() if build.stale(entry)]
        if not stale:
            return
        log.info("vizgen: building %d stale: %s", len(stale), ", ".join(stale))
        returncode, message = _run_build(stale)
        if returncode == 0:
            return
        missing = [name for name in stale if not build.html_path(name).is_file()]
        # While serving, keep the last good widget on screen and say what broke.
        if self.serving and not missing:
            log.error("%s (showing the last good build)", message)
            return
        raise PluginError(message)

    def on_files(self, files: Files, *, config) -> Files:
        if not self.config.enabled:
            return files
        files.append(File.generated(config, f"{paths.ASSET_URL}/tokens.css", content=theme.tokens_css()))
        for folder, url in paths.PUBLISHED_STATIC.items():
            for source in sorted(p for p in folder.rglob("*") if p.is_file()):
                rel = source.relative_to(folder).as_posix()
                if source.name == "MANIFEST.json" or (folder == paths.STATIC / "vendor" and rel in mathrender.BUILD_ONLY):
                    continue
                uri = f"{url}/{rel}"
                files.append(File.generated(config, uri, abs_src_path=str(source)))
        for widget in registry.WIDGETS:
            for source, url in ((build.html_path(widget.name), paths.WIDGET_URL), (build.trace_path(widget.name), paths.TRACE_URL)):
                if source.is_file():
                    files.append(File.generated(config, url.format(name=widget.name), abs_src_path=str(source)))
        self.docs = {f.src_uri for f in files.documentation_pages()}
        return files

    def on_page_markdown(self, markdown, *, page, config, files):
        if not self.config.enabled:
            return markdown
        page_dir = posixpath.dirname(page.file.src_uri)

        def link_to(slug: str) -> str | None:
            source = f"{slug}.md"
            return posixpath.relpath(source, page_dir or ".") if source in self.docs else None

        try:
            markdown, _ = embed.expand(
                markdown,
                to_site_root=_site_root(page),
                facts=lambda name: _trace(name)["facts"],
                tables=lambda name: _trace(name).get("tables", {}),
                fallback=_fallback,
                series=self.parts,
                link_to=link_to,
            )
        except (embed.EmbedError, OSError) as exc:
            raise PluginError(f"{page.file.src_uri}: {exc}") from exc
        return markdown

    def on_post_build(self, *, config):
        if self.config.enabled:
            mathrender.save_cache()

    def on_post_page(self, output, *, page, config):
        if not self.config.enabled:
            return output
        try:
            return page_assets.add_page_assets(output, _site_root(page))
        except page_assets.PageAssetError as exc:
            raise PluginError(f"{page.file.src_uri}: {exc}") from exc


def _run_build(names: list[str]) -> tuple[int, str]:
    """Run `vizgen build NAMES` in a child, relaying its progress lines to the MkDocs log
    as they come (a first build traces for minutes). Returns its exit code and its last
    error line (or last line)."""
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: a chatty child cannot block
        child = subprocess.Popen([sys.executable, "-m", "vizgen", "build", *names],
                                 cwd=paths.ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        for line in child.stdout:
            log.info(line.rstrip())
        child.wait()
        stderr.seek(0)
        errors = stderr.read().strip()
    lines = (errors or "vizgen: build failed").splitlines()
    return child.returncode, lines[-1]


def _site_root(page) -> str:
    """Relative URL from the page to the site root, ending in '/' ('' at the root)."""
    root = get_relative_url(".", page.url)
    return "" if root == "." else root.rstrip("/") + "/"


@lru_cache(maxsize=None)
def _trace(name: str) -> dict:
    """The built trace of a widget or sheet: its facts, and a sheet's tables."""
    try:
        registry.get_entry(name)
    except registry.UnknownWidget as exc:
        raise embed.EmbedError(str(exc)) from None
    source = build.trace_path(name)
    if not source.is_file():
        raise embed.EmbedError(f"{name} has not been built (run: vizgen build {name})")
    return json.loads(source.read_text())


def _fallback(name: str) -> str:
    source = build.fallback_path(name)
    return source.read_text() if source.is_file() else ""

