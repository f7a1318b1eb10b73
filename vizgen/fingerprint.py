"""Content hashes that decide whether a widget must be traced or re-rendered.

A widget's *trace key* covers the source of every project module its trace can reach
(the static closure of `kernels.*` / `vizgen.*` imports from its module) and the
versions of the numeric libraries; its *render key* covers the trace, the templates
and the runtime. Neither needs the widget imported, so checking is cheap.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from . import paths
from .registry import Widget

_PROJECT_PACKAGES = ("kernels", "vizgen")
_LIBRARIES = ("torch", "triton", "numpy")


def _module_file(dotted: str) -> Path | None:
    base = paths.ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _stamp(file: Path) -> tuple[str, int, int]:
    """What identifies a file's content cheaply: path, mtime and size. The caches below
    are keyed on it, so `mkdocs serve` (one long process) sees every edit."""
    st = file.stat()
    return str(file), st.st_mtime_ns, st.st_size


def _imports(file: Path, dotted: str) -> set[str]:
    return set(_imports_of(*_stamp(file), dotted))


def _statements(body):
    """Every statement, nested ones included (an import may sit in a function or an
    `if`), without walking expressions: most of a module's nodes, and of the time."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _statements(getattr(node, field, ()) or ())


@lru_cache(maxsize=None)
def _imports_of(path: str, _mtime_ns: int, _size: int, dotted: str) -> frozenset[str]:
    """Project modules named by any import statement in the file, at any depth."""
    file = Path(path)
    package = dotted if file.name == "__init__.py" else dotted.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(ast.parse(file.read_text(), str(file)).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            # `from kernels import flash` may name a submodule.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(name for name in found if name.split(".")[0] in _PROJECT_PACKAGES)


def source_closure(module: str) -> list[Path]:
    """Every project source file reachable by imports from `module`, sorted."""
    seen: dict[str, Path] = {}
    stack = [module]
    while stack:
        dotted = stack.pop()
        if dotted in seen:
            continue
        file = _module_file(dotted)
        if file is None:
            continue
        seen[dotted] = file
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py too.
        parents = [".".join(dotted.split(".")[:i]) for i in range(1, dotted.count(".") + 1)]
        stack.extend(parents)
        stack.extend(_imports(file, dotted))
    return sorted(set(seen.values()))


@lru_cache(maxsize=None)
def _library_versions() -> str:
    return ",".join(f"{name}=={metadata.version(name)}" for name in _LIBRARIES)


def _hash_files(files, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for file in files:
        digest.update(file.relative_to(paths.ROOT).as_posix().encode())
        digest.update(_file_digest(*_stamp(file)))
    return digest.hexdigest()


@lru_cache(maxsize=None)
def _file_digest(path: str, _mtime_ns: int, _size: int) -> bytes:
    return hashlib.sha256(Path(path).read_bytes()).digest()


def trace_key(widget: Widget) -> str:
    data = [paths.ROOT / rel for rel in getattr(widget, "inputs", ())]
    missing = ",".join(str(path.relative_to(paths.ROOT)) for path in data if not path.is_file())  # absent data is a state too
    files = source_closure(widget.module) + [path for path in data if path.is_file()]
    return _hash_files(files, f"{widget.name}|{_library_versions()}|missing:{missing}")


def _render_inputs() -> list[Path]:
    files = [p for p in paths.TEMPLATES.rglob("*") if p.is_file()]
    files += [p for p in (paths.STATIC / "runtime").rglob("*") if p.is_file()]
    files += [paths.PACKAGE / "render.py", paths.PACKAGE / "theme.py", paths.PACKAGE / "registry.py"]
    return sorted(files)


def render_key(widget: Widget, trace_json: bytes) -> str:
    return _hash_files(_render_inputs(), widget.name + hashlib.sha256(trace_json).hexdigest())


def asset_version(*files: Path) -> str:
    """Short content hash appended to asset URLs so browsers cache them until they change."""
    return _hash_files(sorted(files))[:10]
