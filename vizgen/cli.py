"""Command line: `vizgen build [NAME ...]`, `vizgen list`."""

from __future__ import annotations

import argparse
import sys
import time

from . import build as builder
from . import registry


def _list() -> int:
    manifest = builder.load_manifest()
    for entry in registry.entries():
        state = "stale" if builder.stale(entry, manifest) else "fresh"
        kind = f"part {entry.part}" if isinstance(entry, registry.Widget) else "sheet "
        print(f"{entry.name:32} {kind}  {state:5}  {getattr(entry, 'title', 'numbers and tables for the posts')}")
    return 0


def _build(names: list[str], force: bool, quiet: bool) -> int:
    for name in names:
        registry.get_entry(name)  # unknown names fail before anything runs
    start = time.perf_counter()
    # Progress goes to stdout line by line (flushed), so `mkdocs serve` can relay it live.
    progress = None if quiet else (lambda line: print(f"vizgen: {line}", flush=True))
    report = builder.build(names, force=force, progress=progress)
    for name, message in report.failed.items():
        print(f"vizgen: {message}", file=sys.stderr)
    if not quiet:
        took = time.perf_counter() - start
        print(
            f"vizgen: traced {len(report.traced)}, rendered {len(report.rendered)}, "
            f"fresh {len(report.fresh)}, failed {len(report.failed)} in {took:.1f} s"
        )
    return 0 if report.ok else 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not a usage screen
        self.exit(2, f"vizgen: {message} (see: vizgen --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="vizgen", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="trace and render widgets (all when none named)")
    build.add_argument("names", nargs="*", metavar="NAME")
    build.add_argument("--force", action="store_true", help="ignore the cache")
    build.add_argument("--quiet", action="store_true")
    commands.add_parser("list", help="list widgets and whether they are stale")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        return _build(args.names, args.force, args.quiet)
    except registry.UnknownWidget as exc:
        print(f"vizgen: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
