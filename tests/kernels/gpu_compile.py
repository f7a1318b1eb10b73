"""Compiling Triton kernels for real GPU targets on a CPU-only machine, for the tests.

The interpreter is more lenient than the GPU compiler, so every kernel test module also
compiles its kernel for sm_80 and sm_90 with `triton.compile` and a `GPUTarget`. That
needs the real compiler, i.e. a process where TRITON_INTERPRET=0 was set before triton
was imported: `compile_in_subprocesses` starts one per target, in parallel, and calls
the test module's own `_compile_for_targets(cases)` there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def ptx_summary(compiled, entry: str) -> dict:
    """What the tests assert about one compiled kernel, as plain JSON data."""
    ptx = compiled.asm["ptx"]
    return {
        "target": re.search(r"^\.target (\w+)", ptx, re.MULTILINE).group(1),
        "entry": f".entry {entry}(" in ptx,
        "tensor_core_ops": len(re.findall(r"\b(?:mma\.sync|wgmma\.mma_async)", ptx)),
        "global_stores": len(re.findall(r"\bst\.global", ptx)),
        "cubin_is_elf": compiled.asm["cubin"][:4] == b"\x7fELF",
        "shared_bytes": compiled.metadata.shared,
    }


def compile_in_subprocesses(module: str, cases: list, tmp_path) -> list[dict]:
    """`module._compile_for_targets(cases)` run with the real compiler, one process per target."""
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    script = ("import json, sys\n"
              "from kernels import triton_runtime\n"
              "assert not triton_runtime.interpreted(), 'TRITON_INTERPRET=0 was not respected'\n"
              f"from {module} import _compile_for_targets\n"
              "print(json.dumps(_compile_for_targets(json.loads(sys.argv[1]))))")
    archs = sorted({case[0] for case in cases})
    jobs = {arch: subprocess.Popen([sys.executable, "-c", script, json.dumps([c for c in cases if c[0] == arch])],
                                   cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for arch in archs}
    results = {}
    for arch, job in jobs.items():
        stdout, stderr = job.communicate(timeout=900)
        assert job.returncode == 0, stderr[-3000:]
        results[arch] = iter(json.loads(stdout.splitlines()[-1]))
    return [next(results[case[0]]) for case in cases]
