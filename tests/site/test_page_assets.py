"""KaTeX and mermaid come from the site itself, and only to pages that use them."""

import subprocess
import sys
import textwrap

import pytest

from tests.site.serve import browser_context, serve_site
from vizgen import paths
from vizgen.page_assets import PageAssetError, add_page_assets

BUNDLE = '<script src="../assets/javascripts/bundle.abc.min.js"></script>'
PAGE = "<html><head></head><body>{body}" + BUNDLE + "</body></html>"


def test_plain_page_gets_nothing():
    html = PAGE.format(body="<p>no math</p>")
    assert add_page_assets(html, "../") == html


def test_math_page_gets_katex_from_the_site():
    html = add_page_assets(PAGE.format(body='<span class="arithmatex">\\(x\\)</span>'), "../")
    assert '<link rel="stylesheet" href="../assets/vendor/katex/katex.min.css"></head>' in html
    assert html.index("katex.min.js") < html.index("auto-render.min.js") < html.index("katex-init.js")
    assert "mermaid" not in html


def test_diagram_page_gets_mermaid_before_materials_bundle():
    html = add_page_assets(PAGE.format(body='<pre class="mermaid"><code>graph LR; a-->b</code></pre>'), "../")
    assert html.index("../assets/vendor/mermaid/mermaid.min.js") < html.index("bundle.abc")
    assert "katex" not in html


def test_diagram_without_materials_bundle_is_a_clear_error():
    with pytest.raises(PageAssetError, match="bundle"):
        add_page_assets('<pre class="mermaid"></pre>', "")


@pytest.fixture(scope="module")
def diagram_site(tmp_path_factory):
    """A one-page site on the real configuration, with a diagram and math."""
    root = tmp_path_factory.mktemp("diagram-site")
    (root / "docs").mkdir()
    (root / "docs" / "index.md").write_text(textwrap.dedent("""\
        # Diagram

        The running max is $m_i$ and the HBM is slow.

        ```mermaid
        graph LR
          A[Bahdanau] --> B[Self-attention] --> C[FlashAttention]
        ```
        """))
    (root / "mkdocs.yml").write_text(
        f"INHERIT: {paths.ROOT / 'mkdocs.yml'}\ndocs_dir: {root / 'docs'}\nsite_dir: {root / 'site'}\nnav: [index.md]\n"
    )
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml")],
                            cwd=paths.ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return root / "site"


@pytest.mark.browser
@pytest.mark.slow
def test_mermaid_and_katex_render_offline(diagram_site, browser):
    outside, errors = [], []
    with serve_site(diagram_site) as base:
        context = browser_context(browser, 1280, 900)
        page = context.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        def guard(route):
            if route.request.url.startswith(base):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", guard)
        page.goto(base + "/", wait_until="networkidle")
        # Material draws the diagram into a closed shadow root of a div.mermaid.
        page.wait_for_function(
            "() => { const d = document.querySelector('div.mermaid'); return d && d.getBoundingClientRect().height > 40 }",
            timeout=15000,
        )
        page.wait_for_selector(".katex", timeout=15000)
        assert page.locator("abbr[title]").filter(has_text="HBM").count() >= 1  # glossary tooltip
        context.close()
    assert outside == [] and errors == []
