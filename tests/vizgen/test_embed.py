import pytest

from vizgen import embed

PARTS = [embed.Part(1, "part-one", "One", "Why one?"), embed.Part(2, "part-two", "Two", "Why two?")]


def known(name, values):
    if name not in ("online-softmax", "hardware"):
        raise embed.EmbedError(f"unknown widget {name!r}")
    return values


def expand(markdown, facts=None, link_to=lambda slug: None, root="../"):
    return embed.expand(
        markdown,
        to_site_root=root,
        facts=lambda name: known(name, facts or {"m_0": "1.250"}),
        tables=lambda name: known(name, {"specs": "| a | b |\n|---|---|\n| 1 | 2 |"}),
        fallback=lambda name: "<table><tr><td>fallback</td></tr></table>",
        series=PARTS,
        link_to=link_to,
    )


def test_widget_line_becomes_a_lazy_framed_figure():
    text, used = expand('Intro\n\n{{ widget online-softmax "A caption & more" }}\n\nAfter')
    assert used == ["online-softmax"]
    assert '<iframe src="../widgets/online-softmax.html"' in text
    assert 'loading="lazy"' in text and "allowfullscreen" in text
    assert 'href="../widgets/online-softmax.json"' in text
    assert "A caption &amp; more" in text
    assert "<noscript>" in text and "fallback" in text
    assert text.count('aria-label="') >= 2
    assert text.startswith("Intro") and text.rstrip().endswith("After")


def test_facts_are_injected_and_unknown_ones_are_named():
    assert expand("m is {{ online-softmax.m_0 }}.")[0] == "m is 1.250."
    with pytest.raises(embed.EmbedError, match="no fact 'nope'.*m_0"):
        expand("{{ online-softmax.nope }}")


def test_tables_are_injected_on_their_own_lines():
    text, _ = expand("Before\n\n{{ table hardware.specs }}\n\nAfter")
    assert "| a | b |" in text and text.startswith("Before") and text.rstrip().endswith("After")
    with pytest.raises(embed.EmbedError, match="no table 'nope'"):
        expand("{{ table hardware.nope }}")


@pytest.mark.parametrize("text, message", [
    ('{{ widget nope "x" }}', "unknown widget 'nope'"),
    ("{{ nope.m_0 }}", "unknown widget 'nope'"),
    ("{{ widget online-softmax }}", "malformed placeholder"),
    ("{{ table hardware }}", "malformed placeholder"),
])
def test_bad_placeholders_raise_one_clear_error(text, message):
    with pytest.raises(embed.EmbedError, match=message):
        expand(text)


def test_series_links_only_the_published_parts():
    text, _ = expand("{{ series }}", link_to=lambda slug: "part-one.md" if slug == "part-one" else None)
    assert "1. [**Part 1 — One**](part-one.md)" in text
    assert "2. **Part 2 — Two**" in text and "Why two?" in text
