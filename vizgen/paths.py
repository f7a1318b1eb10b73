"""Where things live on disk and in the published site (one place, so the generator,
the plugin and the tests agree)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "vizgen"
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"

# Generated output: git-ignored, rebuilt by `vizgen build` and the MkDocs plugin.
BUILD = ROOT / "build" / "vizgen"
MANIFEST = BUILD / "manifest.json"
WIDGET_OUT = BUILD / "widgets"

# URLs inside the site (relative to the site root).
WIDGET_URL = "widgets/{name}.html"
TRACE_URL = "widgets/{name}.json"
ASSET_URL = "assets/viz"  # runtime, tokens, embed styles
VENDOR_URL = "assets/vendor"  # plotly, katex (stylesheet and fonts)

# Static folders published as-is: source folder -> URL prefix.
PUBLISHED_STATIC = {
    STATIC / "runtime": ASSET_URL + "/runtime",
    STATIC / "site": ASSET_URL + "/site",
    STATIC / "vendor": VENDOR_URL,
}
