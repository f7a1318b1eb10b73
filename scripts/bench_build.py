"""Benchmark the site build from a fresh copy of the tree, and weigh what a reader
downloads, against the budgets of DESIGN.md.

    python scripts/bench_build.py [--runs 3] [--keep]

Everything runs in a fresh copy of the working tree (tracked and untracked files, as a
clone of it would hold: no build/ caches) under a temporary folder, on this checkout's
virtual environment; the working tree is not touched.

(a) a clean `mkdocs build --strict` from nothing, in total and per phase: each widget's
    and sheet's trace + render (the plugin's progress lines), the rest is MkDocs;
(b) a warm no-change rebuild against a plain `mkdocs build` with the plugin disabled
    (a config that INHERITs mkdocs.yml and sets `vizgen: {enabled: false}`; its pages
    show raw placeholders, fine for timing), medians of N runs after one warm-up;
(c) `mkdocs serve`: from saving a file to "Reloading browsers", after editing one post
    and after editing one widget module (which re-traces that widget);
(d) bytes: each post's first load, as measured in headless chromium: every file the
    page itself fetches (HTML, CSS, JS, the fonts actually used, images, the search
    index) with widget frames blocked, i.e. before any widget activates; and each
    widget's own HTML + trace JSON; raw and gzip -6. The runtime that widget pages share
    is counted once, separately.

A report, not a test: prints a table and PASS/OVER per budget and always exits 0.
Lighthouse scores are a sibling: scripts/bench_lighthouse.py.
"""

from __future__ import annotations

import argparse
import gzip
import posixpath
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.site import fresh_tree  # noqa: E402
from vizgen import paths  # noqa: E402
from vizgen.registry import WIDGETS  # noqa: E402

KB = 1000  # budgets in kB of 1000 bytes (the stricter reading)
BUDGET_POST_GZIP = 300 * KB
BUDGET_WIDGET_GZIP = 100 * KB
BUDGET_CLEAN_S = 180.0
BUDGET_WARM_RATIO = 1.5
BUDGET_RELOAD_S = 2.0

PY = sys.executable
EDITED_POST = "docs/flash-attention-deep-dive.md"
EDITED_WIDGET = "vizgen/widgets/online_softmax.py"  # cheap to re-trace: the edit's cost is the loop's
PROGRESS = re.compile(r"vizgen: \[\d+/\d+\] (\S+) done in ([\d.]+) s")
VIZGEN_TOTAL = re.compile(r"vizgen: traced \d+, rendered \d+, fresh \d+, failed \d+ in ([\d.]+) s")


# --------------------------------------------------------------------------- building


def phases(build: fresh_tree.Build) -> tuple[list[tuple[str, float]], float]:
    """Per-entry seconds from the plugin's progress lines, and the whole vizgen child's."""
    entries = [(m.group(1), float(m.group(2))) for line in build.log if (m := PROGRESS.search(line))]
    totals = [float(m.group(1)) for line in build.log if (m := VIZGEN_TOTAL.search(line))]
    return entries, sum(totals)


def median_build(tree: Path, site: Path, runs: int, *extra: str) -> tuple[float, list[float]]:
    fresh_tree.build(tree, site, *extra)  # warm-up
    samples = [fresh_tree.build(tree, site, *extra).seconds for _ in range(runs)]
    return statistics.median(samples), samples


class Server:
    """`mkdocs serve` in a tree, its log read line by line on a thread."""

    def __init__(self, tree: Path, port: int = 8765):
        self.tree = tree
        self.lines: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            [PY, "-m", "mkdocs", "serve", "--dev-addr", f"127.0.0.1:{port}"],
            cwd=tree, env=fresh_tree.ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip())

    def wait_for(self, text: str, timeout: float) -> float:
        """Seconds until a log line containing `text` (lines before it are dropped)."""
        start = time.perf_counter()
        while True:
            left = timeout - (time.perf_counter() - start)
            if left <= 0:
                raise TimeoutError(f"mkdocs serve: no {text!r} within {timeout:.0f} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if "ERROR" in line or "Traceback" in line:
                raise RuntimeError(f"mkdocs serve: {line}")
            if text in line:
                return time.perf_counter() - start

    def reload_after(self, rel: str, edit) -> float:
        """Apply `edit` to a file of the tree, return seconds until the browsers reload."""
        while not self.lines.empty():
            self.lines.get_nowait()
        path = self.tree / rel
        original = path.read_text()
        start = time.perf_counter()
        path.write_text(edit(original))
        try:
            self.wait_for("Reloading browsers", timeout=120)
            return time.perf_counter() - start
        finally:
            path.write_text(original)
            self.wait_for("Reloading browsers", timeout=120)  # let the restore settle too

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --------------------------------------------------------------------------- bytes


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.css: list[str] = []
        self.js: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and "stylesheet" in (a.get("rel") or "").lower().split() and a.get("href"):
            self.css.append(a["href"])
        elif tag == "script" and a.get("src"):
            self.js.append(a["src"])


def _local(site: Path, from_rel: str, url: str) -> Path | None:
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = unquote(parts.path)
    rel = path.lstrip("/") if path.startswith("/") else posixpath.join(posixpath.dirname(from_rel), path)
    file = site / posixpath.normpath(rel)
    return file if file.is_file() else None


def sizes(file: Path) -> tuple[int, int]:
    data = file.read_bytes()
    return len(data), len(gzip.compress(data, compresslevel=6))


def first_load(site: Path, html: Path) -> dict[str, list[Path]]:
    """The stylesheets and scripts a page names (used for the widgets' shared runtime)."""
    rel = html.relative_to(site).as_posix()
    refs = _Refs()
    refs.feed(html.read_text(encoding="utf-8"))
    css = [f for f in (_local(site, rel, u) for u in refs.css) if f]
    js = [f for f in (_local(site, rel, u) for u in refs.js) if f]
    return {"css": list(dict.fromkeys(css)), "js": list(dict.fromkeys(js))}


KINDS = {"document": "html", "stylesheet": "css", "script": "js", "font": "fonts"}


def measured_first_load(browser, base: str, site: Path, rel: str) -> dict[str, list[Path]]:
    """What chromium fetches for the page, by kind, with widget frames kept from loading."""
    from tests.site.serve import browser_context

    fetched: dict[str, list[Path]] = {kind: [] for kind in ("html", "css", "js", "fonts", "other")}
    context = browser_context(browser, 1280, 900)
    page = context.new_page()

    def route(r):
        path = urlsplit(r.request.url).path
        if not r.request.url.startswith(base) or path.startswith("/" + paths.WIDGET_URL.split("/")[0] + "/"):
            return r.abort()  # a widget frame: not part of the first load
        file = _local(site, "", path + "index.html" if path.endswith("/") else path)
        if file:
            fetched[KINDS.get(r.request.resource_type, "other")].append(file)
        r.continue_()

    page.route("**/*", route)
    page.goto(f"{base}/{rel}", wait_until="networkidle")
    context.close()
    return {kind: list(dict.fromkeys(files)) for kind, files in fetched.items()}


def total(files: list[Path]) -> tuple[int, int]:
    raw = gz = 0
    for f in files:
        r, g = sizes(f)
        raw, gz = raw + r, gz + g
    return raw, gz


def kb(n: float) -> str:
    return f"{n / KB:8.1f}"


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "OVER")


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per warm measurement (median)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-build-"))
    verdicts: list[tuple[str, str, str]] = []
    print(f"bench_build: python {PY}\n             fresh copy of the tree under {tmp}\n")
    try:
        # (a) clean build ------------------------------------------------------------
        tree = fresh_tree.copy_tree(tmp / "tree")
        site = tmp / "site"
        clean = fresh_tree.build(tree, site)
        entries, t_vizgen = phases(clean)
        print("(a) clean build from a fresh copy (no caches)                 seconds")
        print(f"    mkdocs build --strict, in all                             {clean.seconds:8.2f}")
        print(f"    of which vizgen (traces + renders, {len(entries)} entries)         {t_vizgen:8.2f}")
        for name, seconds in sorted(entries, key=lambda e: -e[1]):
            print(f"      {name:40}                {seconds:8.2f}")
        print(f"    of which MkDocs (pages, search index, assets) and start-up {clean.seconds - t_vizgen:8.2f}")
        verdicts.append(("clean build", f"{clean.seconds:.1f} s <= {BUDGET_CLEAN_S:.0f} s",
                         verdict(clean.seconds <= BUDGET_CLEAN_S)))

        # (b) warm no-change rebuild vs plugin disabled --------------------------------
        plain_config = tmp / "mkdocs-plain.yml"
        plain_config.write_text(
            f"INHERIT: {tree / 'mkdocs.yml'}\n"
            f"docs_dir: {tree / 'docs'}\n"
            "plugins:\n  - search\n  - vizgen:\n      enabled: false\n"
        )
        warm, warm_samples = median_build(tree, tmp / "site-warm", args.runs)
        plain, plain_samples = median_build(tree, tmp / "site-plain", args.runs, "--config-file", str(plain_config))
        ratio = warm / plain
        print(f"\n(b) warm rebuild, median of {args.runs} (after one warm-up)         seconds   runs")
        print(f"    mkdocs build, no change (plugin on)                   {warm:8.2f}   {', '.join(f'{s:.2f}' for s in warm_samples)}")
        print(f"    mkdocs build, plugin disabled                         {plain:8.2f}   {', '.join(f'{s:.2f}' for s in plain_samples)}")
        print(f"    ratio                                                 {ratio:8.2f}x")
        verdicts.append(("warm rebuild", f"{ratio:.2f}x plain <= {BUDGET_WARM_RATIO}x", verdict(ratio <= BUDGET_WARM_RATIO)))

        # (c) mkdocs serve: save -> browsers reload --------------------------------------
        server = Server(tree)
        try:
            server.wait_for("Serving on", timeout=300)
            post = statistics.median(server.reload_after(EDITED_POST, lambda t: t + f"\n\nEdited {i}.\n")
                                     for i in range(args.runs))
            widget = statistics.median(server.reload_after(EDITED_WIDGET, lambda t: t + f"\n# edited {i}\n")
                                       for i in range(args.runs))
        finally:
            server.stop()
        print(f"\n(c) mkdocs serve, save to reload, median of {args.runs}              seconds")
        print(f"    after editing one post ({EDITED_POST})   {post:8.2f}")
        print(f"    after editing one widget module ({EDITED_WIDGET}) {widget:8.2f}  (re-traces it)")
        verdicts.append(("serve reload (post)", f"{post:.2f} s <= {BUDGET_RELOAD_S:.0f} s", verdict(post <= BUDGET_RELOAD_S)))

        # (d) bytes ---------------------------------------------------------------------
        posts = sorted(p for p in site.rglob("*.html")
                       if p.name != "404.html" and not p.relative_to(site).as_posix().startswith(("assets/", "widgets/")))
        print(f"\n(d) bytes (kB = {KB} B; gzip -6 per file)")
        print("    post first load (measured)      html      css       js    fonts    other |  total raw  total gzip")
        worst_post = 0
        kinds = ("html", "css", "js", "fonts", "other")
        from tests.site.serve import launch, serve_site

        with serve_site(site) as base, launch() as browser:
            for page in posts:
                rel = page.relative_to(site).as_posix()
                load = measured_first_load(browser, base, site, "" if rel == "index.html" else rel)
                cells = {kind: total(files) for kind, files in load.items()}
                raw = sum(c[0] for c in cells.values())
                gz = sum(c[1] for c in cells.values())
                worst_post = max(worst_post, gz)
                print(f"    {rel:28} gz " + " ".join(kb(cells[k][1]) for k in kinds) + f" | {kb(raw)}    {kb(gz)}")
                print(f"    {'':28} raw" + " ".join(kb(cells[k][0]) for k in kinds))
                print(f"    {'':28} ({sum(len(v) for v in load.values())} files, {len(load['fonts'])} of them fonts)")
        verdicts.append(("post first load", f"worst {worst_post / KB:.1f} kB gzip <= {BUDGET_POST_GZIP / KB:.0f} kB",
                         verdict(worst_post <= BUDGET_POST_GZIP) if posts else verdict(None)))

        print("\n    widget (own HTML + trace JSON)  html raw  json raw |  html gz  json gz |  total gz")
        shared: dict[Path, None] = {}
        worst_widget = 0
        for widget in WIDGETS:
            html = site / paths.WIDGET_URL.format(name=widget.name)
            trace = site / paths.TRACE_URL.format(name=widget.name)
            if not (html.is_file() and trace.is_file()):
                print(f"    {widget.name:31} MISSING")
                worst_widget = float("inf")
                continue
            (hr, hg), (jr, jg) = sizes(html), sizes(trace)
            worst_widget = max(worst_widget, hg + jg)
            print(f"    {widget.name:31} {kb(hr)}  {kb(jr)} | {kb(hg)} {kb(jg)} | {kb(hg + jg)}")
            load = first_load(site, html)
            for f in load["css"] + load["js"]:
                shared[f] = None
        if shared:
            print("    shared widget runtime (counted once):")
            for f in shared:
                r, g = sizes(f)
                print(f"      {f.relative_to(site).as_posix():44} {kb(r)} raw {kb(g)} gz")
            r, g = total(list(shared))
            print(f"      {'total':44} {kb(r)} raw {kb(g)} gz")
        verdicts.append(("widget HTML + data", f"worst {worst_widget / KB:.1f} kB gzip <= {BUDGET_WIDGET_GZIP / KB:.0f} kB",
                         verdict(worst_widget <= BUDGET_WIDGET_GZIP) if WIDGETS else verdict(None)))
    except (fresh_tree.BuildFailed, TimeoutError, RuntimeError) as exc:
        print(f"\nbench_build: {exc}")
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print("\nbudgets")
    for name, detail, result in verdicts:
        print(f"    {result}  {name:20} {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
