from pathlib import Path

import pytest

from vizgen import fingerprint, paths, registry


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """A miniature project: a widget importing kernels in every way Python allows."""
    files = {
        "kernels/__init__.py": "",
        "kernels/a.py": "from . import b\n",
        "kernels/b.py": "import numpy\n",
        "kernels/c.py": "",
        "kernels/unused.py": "",
        "vizgen/__init__.py": "",
        "vizgen/widgets/__init__.py": "",
        "vizgen/widgets/w.py": "import kernels.a\n\ndef trace():\n    from kernels import c\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    return tmp_path


def rel(files, root):
    return sorted(Path(f).relative_to(root).as_posix() for f in files)


def test_closure_follows_absolute_relative_and_nested_imports(fake_root):
    assert rel(fingerprint.source_closure("vizgen.widgets.w"), fake_root) == [
        "kernels/__init__.py", "kernels/a.py", "kernels/b.py", "kernels/c.py",
        "vizgen/__init__.py", "vizgen/widgets/__init__.py", "vizgen/widgets/w.py",
    ]


def test_trace_key_changes_with_a_dependency_but_not_with_an_unrelated_file(fake_root):
    widget = registry.Widget(name="w", part=1, title="t", module="vizgen.widgets.w")
    before = fingerprint.trace_key(widget)
    (fake_root / "kernels/unused.py").write_text("x = 1\n")
    assert fingerprint.trace_key(widget) == before
    (fake_root / "kernels/b.py").write_text("import numpy  # changed\n")
    assert fingerprint.trace_key(widget) != before


def test_the_real_widget_depends_on_the_kernel_it_runs():
    files = rel(fingerprint.source_closure(registry.get("online-softmax").module), paths.ROOT)
    assert {"kernels/flash.py", "kernels/reference.py", "kernels/triton_runtime.py"} <= set(files)
