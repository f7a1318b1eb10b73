"""Benchmark the site build and weigh what a reader downloads, against the budgets.

    python scripts/bench_build.py [--runs 3] [--keep]

(a) a clean build of everything: `vizgen build` (traces + widgets) and `mkdocs build`
    timed separately and summed, and a one-shot `mkdocs build` from nothing (the
    plugin traces the widgets itself);
(b) a warm no-change rebuild (`mkdocs build`, everything cached: the plugin only checks
    staleness and republishes) against a plain `mkdocs build` with the plugin disabled
    (a temporary config that INHERITs mkdocs.yml and sets `vizgen: {enabled: false}`;
    its pages show the raw `{{ ... }}` placeholders, which is fine for timing), the
    median of N runs each after one untimed warm-up;
(c) bytes: each post's first load, as measured in headless chromium: every file the
    page itself fetches (HTML, CSS, JS, the fonts actually used, images, the search
    worker and index) with its widgets' frames blocked, i.e. before any widget
    activates; and each widget's own HTML + trace JSON; raw and gzip -6. The runtime
    that widget pages share is counted once, separately.

A report, not a test: prints a table and PASS/OVER per budget and always exits 0.
Everything is written under a temporary directory, never into site/. It deletes
build/vizgen (regenerated) and runs `vizgen build` again at the end, so the working
tree is left built.
"""

from __future__ import annotations

import argparse
import gzip
import os
import posixpath
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vizgen import paths  # noqa: E402
from vizgen.registry import WIDGETS  # noqa: E402

KB = 1000  # budgets in kB of 1000 bytes (the stricter reading)
BUDGET_POST_GZIP = 300 * KB
BUDGET_WIDGET_GZIP = 100 * KB
BUDGET_CLEAN_S = 180.0
BUDGET_WARM_RATIO = 1.5

ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
PY = sys.executable


# --------------------------------------------------------------------------- running


class StepFailed(RuntimeError):
    pass


def timed(cmd: list[str], label: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    took = time.perf_counter() - start
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise StepFailed(f"{label} failed (exit {result.returncode}):\n{tail}")
    return took


def mkdocs(site: Path, config: Path | None = None, strict: bool = False) -> list[str]:
    cmd = [PY, "-m", "mkdocs", "build", "--site-dir", str(site)]
    if config is not None:
        cmd += ["--config-file", str(config)]
    if strict:
        cmd.append("--strict")
    return cmd


VIZGEN = [PY, "-m", "vizgen", "build"]


def clean_widgets() -> None:
    shutil.rmtree(paths.BUILD, ignore_errors=True)


def median_of(cmd: list[str], label: str, runs: int) -> tuple[float, list[float]]:
    timed(cmd, label + " (warm-up)")
    samples = [timed(cmd, label) for _ in range(runs)]
    return statistics.median(samples), samples


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
    print(f"bench_build: python {PY}\n             output under {tmp}\n")
    backup = tmp / "vizgen-backup"
    if paths.BUILD.is_dir():
        shutil.copytree(paths.BUILD, backup)  # put back only if the final rebuild fails
    try:
        # (a) clean build ------------------------------------------------------------
        site = tmp / "site"
        clean_widgets()
        t_vizgen = timed(VIZGEN, "vizgen build (clean)")
        t_mkdocs = timed(mkdocs(site, strict=True), "mkdocs build --strict (widgets fresh)")
        clean_widgets()
        shutil.rmtree(site, ignore_errors=True)
        t_oneshot = timed(mkdocs(site, strict=True), "mkdocs build --strict (from nothing)")
        worst_clean = max(t_vizgen + t_mkdocs, t_oneshot)
        print("(a) clean build of everything                              seconds")
        print(f"    vizgen build (traces + widgets, build/vizgen deleted) {t_vizgen:8.2f}")
        print(f"    mkdocs build --strict (widgets already fresh)         {t_mkdocs:8.2f}")
        print(f"    together (sum of the two)                             {t_vizgen + t_mkdocs:8.2f}")
        print(f"    one-shot mkdocs build --strict from nothing           {t_oneshot:8.2f}  (plugin traces the widgets)")
        verdicts.append(("clean build", f"{worst_clean:.1f} s <= {BUDGET_CLEAN_S:.0f} s",
                         verdict(worst_clean <= BUDGET_CLEAN_S)))

        # (b) warm no-change rebuild vs plugin disabled --------------------------------
        plain_config = tmp / "mkdocs-plain.yml"
        plain_config.write_text(
            f"INHERIT: {ROOT / 'mkdocs.yml'}\n"
            f"docs_dir: {ROOT / 'docs'}\n"
            "plugins:\n  - search\n  - vizgen:\n      enabled: false\n"
        )
        warm, warm_samples = median_of(mkdocs(tmp / "site-warm"), "mkdocs build (warm, no change)", args.runs)
        plain, plain_samples = median_of(mkdocs(tmp / "site-plain", plain_config), "mkdocs build (plugin disabled)", args.runs)
        ratio = warm / plain
        from vizgen import build as vbuild

        start = time.perf_counter()
        stale = [w.name for w in WIDGETS if vbuild.stale(w)]
        t_stale = time.perf_counter() - start
        print(f"\n(b) warm rebuild, median of {args.runs} (after one warm-up)         seconds   runs")
        print(f"    mkdocs build, no change (plugin on)                   {warm:8.2f}   {', '.join(f'{s:.2f}' for s in warm_samples)}")
        print(f"    mkdocs build, plugin disabled                         {plain:8.2f}   {', '.join(f'{s:.2f}' for s in plain_samples)}")
        print(f"    ratio                                                 {ratio:8.2f}x")
        print(f"    staleness check alone (in-process, {len(WIDGETS)} widget(s))       {t_stale:8.3f}   stale: {stale or 'none'}")
        verdicts.append(("warm rebuild", f"{ratio:.2f}x plain <= {BUDGET_WARM_RATIO}x", verdict(ratio <= BUDGET_WARM_RATIO)))

        # (c) bytes ---------------------------------------------------------------------
        posts = sorted(p for p in site.rglob("*.html")
                       if p.name != "404.html" and not p.relative_to(site).as_posix().startswith(("assets/", "widgets/")))
        print(f"\n(c) bytes (kB = {KB} B; gzip -6 per file)")
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
    except StepFailed as exc:
        print(f"\nbench_build: {exc}")
    finally:
        # Leave the working tree built, whatever happened above.
        try:
            timed(VIZGEN, "vizgen build (restore)")
        except StepFailed as exc:
            print(f"\nbench_build: {exc}")
            if backup.is_dir():
                shutil.rmtree(paths.BUILD, ignore_errors=True)
                shutil.copytree(backup, paths.BUILD)
                print("bench_build: put the previous build/vizgen back")
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
