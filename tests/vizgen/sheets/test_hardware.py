from kernels.gpu_specs import A100, H100
from vizgen import build, registry, tracejson
from vizgen.sheets import hardware


def test_facts_are_computed_from_the_specs():
    facts = hardware.trace()["facts"]
    assert facts["a100_ridge_fp16"] == f"{312e12 / 2.039e12:.0f}"
    assert facts["h100_ridge_fp16"] == f"{989.4e12 / 3.35e12:.0f}"
    assert facts["a100_sms"] == A100.sms and facts["h100_sms"] == H100.sms
    assert facts["matrix_fp16_8k"] == "128 MiB"  # 8192² × 2 bytes = 2^27 bytes


def test_tables_are_markdown_with_one_row_per_item():
    tables = hardware.trace()["tables"]
    spec = tables["gpu_specs"].splitlines()
    assert spec[0].startswith("| |") and A100.name in spec[0] and H100.name in spec[0]
    assert all(line.count("|") == 4 for line in spec)
    matrix = tables["attention_matrix"].splitlines()
    assert len(matrix) == 2 + len(hardware.MATRIX_SIZES)


def test_sheet_builds_through_the_generator():
    sheet = registry.get_entry("hardware")
    assert tracejson.dumps(hardware.trace()) == build.run_trace(sheet)
