"""Fixtures for the site tests: one strict build per session, served on 127.0.0.1, and
one headless chromium (Debian's, never a downloaded one) shared by the browser tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.site.serve import launch, serve_site

ROOT = Path(__file__).resolve().parents[2]
WARNING_LINE = re.compile(r"^\s*WARNING\b", re.M)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> tuple[Path, str]:
    """Build the site with `mkdocs build --strict`; return (site directory, build log).

    Fails (with the whole log) when the build fails or logs any WARNING line.
    """
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    log = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed (exit {result.returncode}):\n{log}", pytrace=False)
    if WARNING_LINE.search(log):
        pytest.fail(f"mkdocs build logged warnings:\n{log}", pytrace=False)
    return site, log


@pytest.fixture(scope="session")
def site_path(built_site) -> Path:
    return built_site[0]


@pytest.fixture(scope="session")
def site_url(site_path):
    with serve_site(site_path) as base:
        yield base


@pytest.fixture(scope="session")
def browser():
    with launch() as chromium:
        yield chromium
