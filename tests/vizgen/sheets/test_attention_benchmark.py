import json
import subprocess
import sys

from vizgen import paths
from vizgen.sheets import attention_benchmark as sheet

POINTS = [
    {"impl": impl, "dtype": "fp16", "head_dim": 128, "n": n, "causal": False, "tflops": tf}
    for impl, n, tf in [("triton (ours)", 4096, 300.0), ("sdpa flash", 4096, 320.0), ("sdpa flash", 8192, 330.0)]
]


def test_without_a_gpu_run_the_table_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(sheet, "DATA", tmp_path / "missing.json")
    trace = sheet.trace()
    assert trace["facts"]["measured"] == "no"
    assert "Not measured yet" in trace["tables"]["fp16_d128"]


def test_a_committed_run_renders_one_row_per_implementation(tmp_path, monkeypatch):
    data = tmp_path / "run.json"
    data.write_text(json.dumps({"gpu": "NVIDIA H100", "date": "2026-11-27", "torch": "2.13.0", "triton": "3.8.0",
                                "triton_over_sdpa_flash": {"fp16 N=4096 causal=False": 300 / 320}, "points": POINTS}))
    monkeypatch.setattr(sheet, "DATA", data)
    trace = sheet.trace()
    table = trace["tables"]["fp16_d128"].splitlines()
    assert table[0] == "| implementation | N = 4k | N = 8k |"
    assert table[2] == "| triton (ours) | 300 | — |" and table[3] == "| sdpa flash | 320 | 330 |"
    assert trace["facts"]["gpu"] == "NVIDIA H100" and trace["facts"]["worst_ratio"] == "0.94"


def test_benchmark_flop_model_and_no_gpu_exit():
    sys.path.insert(0, str(paths.ROOT / "scripts"))
    import bench_attention

    assert bench_attention.attention_flops(1, 1, 1024, 64, causal=False) == 4 * 1024 * 1024 * 64
    assert bench_attention.attention_flops(2, 3, 8, 16, causal=True) == 4 * 2 * 3 * 8 * 8 * 16 / 2
    result = subprocess.run([sys.executable, str(paths.ROOT / "scripts" / "bench_attention.py")],
                            capture_output=True, text=True, env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and "no CUDA GPU" in result.stdout
