"""Screenshot every page and widget of the built site, at desktop width and at 375 px.

    python scripts/screenshots.py [--out screenshots] [--step N] [--reduced-motion]

Serves `site/` on 127.0.0.1 and drives Debian's chromium through Playwright (never a
downloaded browser). Look at the PNGs before calling a page or widget done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.site.serve import browser_context, launch, serve_site  # noqa: E402

VIEWPORTS = {"desktop": (1280, 900), "phone": (375, 812)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, default=Path("site"))
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--step", type=int, default=0, help="press Step this many times on widget pages")
    parser.add_argument("--reduced-motion", action="store_true")
    parser.add_argument("--only", nargs="*", default=[], help="only pages whose path contains one of these")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pages = sorted(p.relative_to(args.site).as_posix() for p in args.site.rglob("*.html")
                   if p.name != "404.html" and "assets" not in p.parts)
    pages = [p for p in pages if not args.only or any(word in p for word in args.only)]
    with serve_site(args.site) as base, launch() as browser:
        for label, (width, height) in VIEWPORTS.items():
            context = browser_context(browser, width, height, reduced_motion=args.reduced_motion)
            page = context.new_page()
            for rel in pages:
                page.goto(f"{base}/{rel}", wait_until="networkidle")
                sequential = page.locator('[data-act="step"]').count() > 0
                for _ in range(args.step if sequential else 0):
                    page.click('[data-act="step"]')
                page.wait_for_timeout(700)
                name = rel.replace("/", "_").replace(".html", "")
                target = args.out / f"{name}-{label}.png"
                page.screenshot(path=str(target), full_page=True)
                print(target)
                # Each embedded widget on its own, once its frame has loaded.
                for i, figure in enumerate(page.locator("figure.viz-embed").all()):
                    figure.scroll_into_view_if_needed()
                    page.wait_for_timeout(1200)
                    embed = args.out / f"{name}-embed{i}-{label}.png"
                    figure.screenshot(path=str(embed))
                    print(embed)
            context.close()


if __name__ == "__main__":
    main()
