"""Every code snippet a post includes (docs/snippets/*.py) runs; GPU ones skip without CUDA."""

import runpy
from pathlib import Path

import pytest
import torch

SNIPPETS = sorted((Path(__file__).resolve().parents[2] / "docs" / "snippets").glob("*.py"))


def test_there_are_snippets():
    assert SNIPPETS


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda p: p.name)
def test_snippet_runs(snippet):
    if "# requires: cuda" in snippet.read_text().splitlines()[0] and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    runpy.run_path(str(snippet), run_name="__main__")


def test_snippets_are_short():
    for snippet in SNIPPETS:
        code = [line for line in snippet.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert len(code) <= 20, f"{snippet.name}: {len(code)} lines; a post's snippet stays within 20"
