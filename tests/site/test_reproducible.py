"""Two clean builds of a fresh copy of the tree are byte-identical, sitemaps aside:
measurements are committed data and nothing is timed during a build."""

import pytest

from tests.site import fresh_tree


def test_differences_finds_missing_and_changed_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, text in ((a, "1"), (b, "2")):
        (root / "sub").mkdir(parents=True)
        (root / "same.txt").write_text("x")
        (root / "sub" / "page.html").write_text(text)
        (root / "sitemap.xml").write_text(text)  # ignored: Material dates it
    (a / "extra.json").write_text("{}")
    assert fresh_tree.differences(a, b) == ["only in the first: extra.json", "differs: sub/page.html"]


@pytest.mark.slow
def test_two_clean_builds_are_identical(tmp_path):
    sites = []
    for name in ("first", "second"):  # two paths: an absolute path in the output would differ
        tree = fresh_tree.copy_tree(tmp_path / name)
        assert not (tree / "build").exists()  # caches empty: traces, widgets, sheets
        fresh_tree.build(tree, tmp_path / f"site-{name}")
        sites.append(tmp_path / f"site-{name}")
    assert (sites[0] / "widgets" / "ring-attention-rotation.json").is_file()
    assert fresh_tree.differences(*sites) == []
