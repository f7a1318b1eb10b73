"""Lighthouse (mobile preset) on every page of the site, medians of N runs, against the
budgets of DESIGN.md: performance >= 95 and accessibility >= 95 on every post.

    python scripts/bench_lighthouse.py [--site DIR] [--runs 3] [--out FILE]

Builds the site into a temporary folder unless --site names a built one, serves it on
127.0.0.1 and runs npm's `lighthouse` against Debian's chromium (headless, its default
mobile emulation and simulated throttling: a mid-range phone on a slow 4G link).
Lighthouse is installed on first use into build/lighthouse/ (git-ignored): version
12.2.3, the newest that runs on Node 20. A report, not a test: prints a table and
PASS/LOW per page and exits 0. Timing-based scores depend on how busy this machine is:
run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.site import fresh_tree  # noqa: E402
from tests.site.serve import CHROMIUM, serve_site  # noqa: E402

LIGHTHOUSE_VERSION = "12.2.3"  # 13 needs Node 22; Debian's is 20
LIGHTHOUSE_DIR = ROOT / "build" / "lighthouse"
BUDGET = 0.95
METRICS = {  # Lighthouse audit id -> column
    "first-contentful-paint": "FCP s",
    "largest-contentful-paint": "LCP s",
    "total-blocking-time": "TBT ms",
    "cumulative-layout-shift": "CLS",
    "speed-index": "SI s",
}


def lighthouse_bin() -> Path:
    binary = LIGHTHOUSE_DIR / "node_modules" / ".bin" / "lighthouse"
    if not binary.exists():
        print(f"bench_lighthouse: installing lighthouse@{LIGHTHOUSE_VERSION} into {LIGHTHOUSE_DIR.relative_to(ROOT)}")
        LIGHTHOUSE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(LIGHTHOUSE_DIR),
                        "-E", f"lighthouse@{LIGHTHOUSE_VERSION}"], check=True)
    return binary


def pages(site: Path) -> list[str]:
    """Site-relative URLs of every page (posts and the landing page), widgets excluded."""
    found = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html")
                   if not p.relative_to(site).as_posix().startswith(("assets/", "widgets/", "search/")))
    return [rel[: -len("index.html")] for rel in found]


def run_once(binary: Path, url: str, out: Path) -> dict:
    subprocess.run(
        [str(binary), url, "--quiet", "--output=json", f"--output-path={out}",
         "--only-categories=performance,accessibility",
         "--chrome-flags=--headless=new --no-sandbox --disable-gpu"],
        check=True, env={**os.environ, "CHROME_PATH": CHROMIUM}, capture_output=True, text=True,
    )
    report = json.loads(out.read_text())
    row = {name: report["categories"][name]["score"] for name in ("performance", "accessibility")}
    row.update({audit: report["audits"][audit]["numericValue"] for audit in METRICS})
    failing = [a for a in report["categories"]["accessibility"]["auditRefs"]
               if report["audits"][a["id"]].get("score") == 0 and a["weight"] > 0]
    row["a11y_failing"] = [a["id"] for a in failing]
    row["opportunities"] = sorted(
        ((audit["id"], audit["details"]["overallSavingsMs"]) for audit in report["audits"].values()
         if (audit.get("details") or {}).get("overallSavingsMs", 0) > 100), key=lambda kv: -kv[1])[:3]
    return row


def show(value: float, column: str) -> str:
    if column.endswith(" s"):
        return f"{value / 1000:6.2f}"
    if column.endswith(" ms"):
        return f"{value:6.0f}"
    return f"{value:6.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, help="a built site (default: build the working tree afresh)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the medians as JSON here")
    args = parser.parse_args()
    binary = lighthouse_bin()
    tmp = Path(tempfile.mkdtemp(prefix="bench-lighthouse-"))
    try:
        site = args.site
        if site is None:
            site = tmp / "site"
            fresh_tree.build(ROOT, site)
        results = {}
        with serve_site(site, compress=True) as base:  # gzip, as a static host serves it
            for rel in pages(site):
                runs = [run_once(binary, f"{base}/{rel}", tmp / "report.json") for _ in range(args.runs)]
                median = {key: statistics.median(r[key] for r in runs) for key in ("performance", "accessibility", *METRICS)}
                median["a11y_failing"] = sorted({a for r in runs for a in r["a11y_failing"]})
                median["opportunities"] = runs[0]["opportunities"]
                results[rel or "/"] = median
        header = "    page                                      perf  a11y " + " ".join(f"{c:>6}" for c in METRICS.values())
        print(f"Lighthouse {LIGHTHOUSE_VERSION}, mobile preset, chromium {CHROMIUM}, median of {args.runs}\n{header}")
        low = []
        for rel, m in results.items():
            ok = m["performance"] >= BUDGET and m["accessibility"] >= BUDGET
            if not ok:
                low.append(rel)
            print(f"    {rel:40} {m['performance'] * 100:5.0f} {m['accessibility'] * 100:5.0f} "
                  + " ".join(show(m[a], c) for a, c in METRICS.items()) + f"  {'PASS' if ok else 'LOW '}")
            if m["a11y_failing"]:
                print(f"    {'':40} accessibility audits failing: {', '.join(m['a11y_failing'])}")
            if m["opportunities"]:
                print(f"    {'':40} largest savings: " + ", ".join(f"{k} {v:.0f} ms" for k, v in m["opportunities"]))
        print(f"\nbudgets\n    {'PASS' if not low else 'LOW '}  Lighthouse mobile  performance and accessibility "
              f">= {BUDGET * 100:.0f} on every page" + (f" (low: {', '.join(low)})" if low else ""))
        if args.out:
            args.out.write_text(json.dumps(results, indent=1) + "\n")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
