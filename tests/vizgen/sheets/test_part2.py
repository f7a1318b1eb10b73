"""The part2 sheet: the N^2 memory table in binary units, the associativity example, and
the Performer benchmark (or "not measured" without it)."""

import json
import re
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from kernels.approx import kernel_features
from vizgen.sheets import part2

SNIPPET = Path(__file__).resolve().parents[3] / "docs" / "snippets" / "naive_performer.py"


@pytest.fixture(scope="module")
def sheet():
    return part2.trace()


def test_memory_in_binary_units_from_the_closed_form(sheet):
    facts = sheet["facts"]
    # 512^2 x 2 bytes = 512 KiB; x 16 heads x 24 layers = 192 MiB (the plan's "~190 MB").
    assert facts["head_512_fp16"] == "512 KiB" and facts["model_512_fp16"] == "192 MiB"
    assert facts["model_2048_fp16"] == "3 GiB" and facts["head_8192_fp16"] == "128 MiB"
    assert facts["model_8192_fp16"] == f"{24 * 16 * 8192**2 * 2 // 2**30} GiB" == "48 GiB"
    assert facts["model_32768_fp16"] == "768 GiB" and facts["head_32768_fp16"] == "2 GiB"
    assert facts["growth_512_to_32768"] == "4,096"
    rows = sheet["tables"]["attention_memory"].splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == ["512", "2,048", "8,192", "32,768"]


def _parse_tex(tex: str) -> np.ndarray:
    body = re.fullmatch(r"\\begin\{bmatrix\} (.*) \\end\{bmatrix\}", tex).group(1)
    return np.array([[float(x) for x in row.split(" & ")] for row in body.split(r" \\ ")])


def test_associativity_numbers_agree_with_the_kernel(sheet):
    facts, ex = sheet["facts"], kernel_features.associativity_example()
    assert (facts["assoc_n"], facts["assoc_m"], facts["assoc_d"]) == (4, 2, 2)
    np.testing.assert_array_equal(_parse_tex(facts["assoc_phi_q_tex"]), ex.phi_q)
    np.testing.assert_array_equal(_parse_tex(facts["assoc_scores_tex"]), ex.phi_q @ ex.phi_k.T)
    np.testing.assert_array_equal(_parse_tex(facts["assoc_kv_tex"]), ex.phi_k.T @ ex.v)
    # both orders give the same output, from twice the multiplications one way
    assert facts["assoc_left_tex"] == facts["assoc_right_tex"] and facts["assoc_equal"] == "yes"
    assert (facts["assoc_left_multiplies"], facts["assoc_right_multiplies"]) == (64, 32)
    assert "| 64 |" in sheet["tables"]["associativity"] and "| 32 |" in sheet["tables"]["associativity"]


def test_benchmark_facts_come_from_the_committed_run(sheet):
    run = json.loads(part2.BENCHMARK.read_text())
    facts = sheet["facts"]
    assert run["machine"]["cpu"] in facts["bench_machine"]
    assert facts["bench_speedup"] == f"{part2.significant(run['sdpa']['median_s'] / run['naive_performer']['median_s'], 2)}×"
    assert facts["bench_n"] == f"{run['setting']['n']:,}"
    assert "torch SDPA" in sheet["tables"]["performer_benchmark"]


def test_without_a_benchmark_the_sheet_says_not_measured(monkeypatch, tmp_path):
    monkeypatch.setattr(part2, "BENCHMARK", tmp_path / "missing.json")
    sheet = part2.trace()
    assert sheet["facts"]["bench_speedup"] == sheet["facts"]["bench_machine"] == "not measured"
    assert "Not measured" in sheet["tables"]["performer_benchmark"]


def test_the_post_snippet_is_the_benchmarked_kernel():
    """The snippet the post prints and the function the benchmark times agree."""
    snippet = runpy.run_path(str(SNIPPET))["naive_performer"]
    gen = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(3, 128, 16, generator=gen, dtype=torch.float64)
    w = torch.randn(64, 16, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(snippet(q, k, v, w), kernel_features.naive_performer(q, k, v, w))
