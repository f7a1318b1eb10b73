"""Vendor the site's third-party front-end assets from the npm registry.

The site must work offline and never touch a CDN, so Plotly and KaTeX are copied into
`vizgen/static/vendor/` once and committed. KaTeX's script runs at build time only
(vizgen/mathrender.py): pages get its stylesheet and fonts. Run this only to change a
version; it rewrites the folder and `vendor/MANIFEST.json` (versions and sha256).

    python scripts/vendor_assets.py
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "vizgen" / "static" / "vendor"

# package@version -> {path inside the npm tarball: path under vendor/}
PACKAGES = {
    # Cartesian bundle: heatmaps, bars, scatter; a third of the full plotly.js.
    "plotly.js-cartesian-dist-min@4.1.1": {
        "package/plotly-cartesian.min.js": "plotly/plotly-cartesian.min.js",
    },
    "katex@0.16.47": {
        "package/dist/katex.min.js": "katex/katex.min.js",
        "package/dist/katex.min.css": "katex/katex.min.css",
        "package/dist/fonts/*.woff2": "katex/fonts/",
    },
}


def npm_pack(spec: str, into: Path) -> Path:
    out = subprocess.run(
        ["npm", "pack", spec, "--silent", "--pack-destination", str(into)],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    return into / out


def extract(tarball: Path, files: dict[str, str]) -> list[Path]:
    written = []
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        for pattern, target in files.items():
            regex = re.compile("^" + re.escape(pattern).replace(r"\*", "[^/]*") + "$")
            matched = [name for name in members if regex.match(name)]
            if not matched:
                raise SystemExit(f"vendor_assets: {tarball.name} has no file matching {pattern}")
            for name in sorted(matched):
                dest = VENDOR / target / Path(name).name if target.endswith("/") else VENDOR / target
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(members[name]).read())
                written.append(dest)
    return written


def woff2_only(css_path: Path) -> None:
    """Keep only the woff2 font sources: every browser we target reads woff2."""
    css = css_path.read_text()
    css = re.sub(r',url\(fonts/[^)]+\.(woff|ttf)\) format\("(woff|truetype)"\)', "", css)
    css_path.write_text(css)


def main() -> None:
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    manifest = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec, files in PACKAGES.items():
            for path in extract(npm_pack(spec, Path(tmp)), files):
                rel = path.relative_to(VENDOR).as_posix()
                manifest[rel] = spec
    woff2_only(VENDOR / "katex" / "katex.min.css")
    entries = {
        rel: {"from": spec, "sha256": hashlib.sha256((VENDOR / rel).read_bytes()).hexdigest()}
        for rel, spec in sorted(manifest.items())
    }
    (VENDOR / "MANIFEST.json").write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    print(f"vendored {len(entries)} files into {VENDOR}")


if __name__ == "__main__":
    main()
