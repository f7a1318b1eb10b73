"""Two clean builds of the working tree are byte-identical (sitemaps aside).

    python scripts/check_reproducible.py [--keep]

Copies the tree twice (tracked and untracked files, no caches, different paths, so an
absolute path leaking into the output shows too), builds each with
`mkdocs build --strict` from nothing and lists every file that differs. Exits 1 if any
does. The same check runs as a slow test (tests/site/test_reproducible.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.site import fresh_tree  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the two trees and sites")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="reproducible-"))
    try:
        sites = []
        for name in ("first", "second"):
            tree = fresh_tree.copy_tree(tmp / name)
            result = fresh_tree.build(tree, tmp / f"site-{name}")
            print(f"check_reproducible: {name} clean build in {result.seconds:.1f} s")
            sites.append(tmp / f"site-{name}")
        found = fresh_tree.differences(*sites)
        for line in found:
            print(f"check_reproducible: {line}")
        print(f"check_reproducible: {'identical' if not found else f'{len(found)} file(s) differ'} "
              f"(ignoring {', '.join(fresh_tree.IGNORED)})")
        return 1 if found else 0
    finally:
        if args.keep:
            print(f"check_reproducible: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
