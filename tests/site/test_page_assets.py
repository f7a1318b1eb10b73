"""Math is typeset at build time: pages link KaTeX's stylesheet (from the site itself)
when they have math, and no page loads KaTeX's JavaScript."""

import json
import subprocess
import sys
import textwrap

import pytest

from tests.site.serve import browser_context, serve_site
from vizgen import mathrender, paths
from vizgen.page_assets import PageAssetError, add_page_assets

PAGE = "<html><head></head><body>{body}</body></html>"


def test_plain_page_gets_nothing():
    html = PAGE.format(body="<p>no math</p>")
    assert add_page_assets(html, "../") == html


def test_math_page_gets_typeset_math_and_only_the_stylesheet():
    html = add_page_assets(PAGE.format(body='<p>a <span class="arithmatex">\\(m_i &lt; 1\\)</span></p>'
                                            '<div class="arithmatex">\\[\\frac{a}{b}\\]</div>'), "../")
    assert '<link rel="stylesheet" href="../assets/vendor/katex/katex.min.css"></head>' in html
    assert "arithmatex" not in html and "<script" not in html
    assert html.count('class="katex"') == 2 and '<div class="math-display"><span class="katex-display">' in html
    assert "<mi>m</mi>" in html and "<mo>&lt;</mo>" in html  # the unescaped TeX reached KaTeX (MathML copy)


def test_the_same_formula_typesets_the_same_every_time():
    assert mathrender.render_tex("e^{x}", False) == mathrender._typeset("e^{x}", False)


def test_typeset_formulas_are_kept_for_the_next_build(tmp_path, monkeypatch):
    monkeypatch.setattr(mathrender, "CACHE", tmp_path / "katex.json")
    first = mathrender._Cache()
    html = first.get("x^2", True)
    first.save()
    monkeypatch.setattr(mathrender, "_typeset", lambda tex, display: pytest.fail("typeset again"))
    assert mathrender._Cache().get("x^2", True) == html  # a new build reads it back
    stale = json.loads((tmp_path / "katex.json").read_text()) | {"katex": "another version"}
    (tmp_path / "katex.json").write_text(json.dumps(stale))
    with pytest.raises(pytest.fail.Exception, match="typeset again"):
        mathrender._Cache().get("x^2", True)  # another KaTeX: nothing is reused


def test_a_formula_katex_cannot_parse_is_one_clear_line():
    with pytest.raises(PageAssetError, match=r"cannot typeset \$\\frac\{\$: .*Unexpected end of input") as info:
        add_page_assets(PAGE.format(body='<span class="arithmatex">\\(\\frac{\\)</span>'), "")
    assert "\n" not in str(info.value)


def test_materials_search_dialog_gets_an_accessible_name():
    html = add_page_assets(PAGE.format(body='<div class="md-search" data-md-component="search" role="dialog"></div>'), "")
    assert 'role="dialog" aria-label="Search the series">' in html


@pytest.fixture(scope="module")
def math_site(tmp_path_factory):
    """A one-page site on the real configuration, with math, a glossary term and a quiz."""
    root = tmp_path_factory.mktemp("math-site")
    (root / "docs").mkdir()
    (root / "docs" / "index.md").write_text(textwrap.dedent("""\
        # Math

        The running max is $m_i$ and the HBM is slow.

        $$\\operatorname{softmax}(s)_i = \\frac{e^{s_i - m}}{\\sum_j e^{s_j - m}}$$

        ```quiz
        - q: What is $m_1$ after $s = (1, 3)$?
          options:
            - a: $3$
              correct: true
              why: The max of $1$ and $3$.
            - a: $1$
              why: That is the first score, $s_1$.
        ```
        """))
    (root / "mkdocs.yml").write_text(
        f"INHERIT: {paths.ROOT / 'mkdocs.yml'}\ndocs_dir: {root / 'docs'}\nsite_dir: {root / 'site'}\nnav: [index.md]\n"
    )
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml")],
                            cwd=paths.ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return root / "site"


def test_quiz_feedback_carries_typeset_math(math_site):
    html = (math_site / "index.html").read_text()
    assert "arithmatex" not in html and 'data-why="The max of &lt;span class=&quot;katex&quot;' in html


@pytest.mark.browser
@pytest.mark.slow
def test_math_shows_offline_without_any_script(math_site, browser):
    outside, errors, scripts = [], [], []
    with serve_site(math_site) as base:
        context = browser_context(browser, 375, 812)
        page = context.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda req: scripts.append(req.url) if req.resource_type == "script" else None)

        def guard(route):
            if route.request.url.startswith(base):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", guard)
        page.goto(base + "/", wait_until="networkidle")
        formula = page.locator(".math-display .katex-html").first
        assert formula.bounding_box()["height"] > 30  # laid out as a fraction by KaTeX's CSS and fonts
        assert page.evaluate("document.fonts.check('16px KaTeX_Main')")
        page.locator(".quiz-option input").first.check()
        assert page.locator(".quiz-feedback .katex").count() == 2  # "The max of $1$ and $3$", typeset
        assert page.locator("abbr[title]").filter(has_text="HBM").count() >= 1  # glossary tooltip
        context.close()
    assert outside == [] and errors == []
    assert not [url for url in scripts if "katex" in url or "mermaid" in url]
