"""A fresh copy of the working tree (what a clone of it would hold, caches empty) and a
clean build of it: shared by scripts/check_reproducible.py, scripts/bench_build.py and
the reproducibility test.

The copy runs on this checkout's virtual environment: `python -m mkdocs` puts the copy
first on sys.path, so it imports the copy's `kernels` and `vizgen`, not the editable
install's.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vizgen import paths

ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
# Material writes the build date into the sitemap; nothing else may differ between builds.
IGNORED = ("sitemap.xml", "sitemap.xml.gz")


def copy_tree(dest: Path, source: Path = paths.ROOT) -> Path:
    """Copy the tracked and untracked-but-not-ignored files of `source` into `dest`."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=source,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = source / rel
        if src.is_file():  # a deleted but still tracked file is listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@dataclass(frozen=True)
class Build:
    seconds: float
    log: list[str]  # MkDocs' log lines, the plugin's progress among them


class BuildFailed(RuntimeError):
    pass


def build(tree: Path, site: Path, *extra: str) -> Build:
    """`mkdocs build --strict` in `tree` into `site`, timed."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site), *extra],
                            cwd=tree, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log = (result.stdout + result.stderr).splitlines()
    if result.returncode != 0:
        raise BuildFailed(f"mkdocs build in {tree} failed (exit {result.returncode}): " + " | ".join(log[-5:]))
    return Build(seconds, log)


def differences(a: Path, b: Path, ignored=IGNORED) -> list[str]:
    """Files present in only one site, or different in content, relative paths."""
    def listing(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name not in ignored}

    left, right = listing(a), listing(b)
    found = [f"only in the first: {rel}" for rel in sorted(left - right)]
    found += [f"only in the second: {rel}" for rel in sorted(right - left)]
    found += [f"differs: {rel}" for rel in sorted(left & right) if not filecmp.cmp(a / rel, b / rel, shallow=False)]
    return found
