"""The posts as a reader sees them: every placeholder expanded into a sentence that reads
right (no doubled units, no leftover syntax, no programmer's number formats)."""

import re
from html.parser import HTMLParser


SUSPECT = {
    "leftover placeholder": re.compile(r"\{\{|\}\}"),
    "doubled ×": re.compile(r"×\s*×"),
    "doubled %": re.compile(r"%\s*%"),
    "not a number": re.compile(r"\b(nan|NaN|None|inf)\b"),
    "Python float format": re.compile(r"\d\.?\d*e[-+]\d\d\b"),
    "unfinished text": re.compile(r"\bTODO\b"),
}


class _ArticleText(HTMLParser):
    """Visible prose of the article: no code, scripts, math source or embedded figures."""

    SKIP_TAGS = {"script", "style", "code", "pre", "noscript", "iframe"}
    SKIP_CLASSES = {"katex", "viz-embed"}  # math typeset by KaTeX (its source rides along in MathML)
    VOID = {"br", "img", "input", "hr", "meta", "link", "source", "wbr"}

    def __init__(self):
        super().__init__()
        self.in_article, self.skip_depth, self.parts = False, 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            self.in_article = True
            return
        if not self.in_article or tag in self.VOID:
            return
        classes = set((dict(attrs).get("class") or "").split())
        if self.skip_depth or tag in self.SKIP_TAGS or classes & self.SKIP_CLASSES:
            self.skip_depth += 1

    def handle_endtag(self, tag):
        if tag == "article":
            self.in_article = False
        elif self.in_article and self.skip_depth and tag not in self.VOID:
            self.skip_depth -= 1

    def handle_data(self, data):
        if self.in_article and not self.skip_depth:
            self.parts.append(data)


def test_posts_read_cleanly(site_path):
    pages = sorted(p for p in site_path.rglob("index.html") if "widgets" not in p.parts and "assets" not in p.parts)
    assert pages
    problems = []
    for page in pages:
        parser = _ArticleText()
        parser.feed(page.read_text(encoding="utf-8"))
        text = " ".join(parser.parts)
        for what, pattern in SUSPECT.items():
            for match in pattern.finditer(text):
                context = text[max(0, match.start() - 50): match.end() + 50].replace("\n", " ")
                problems.append(f"{page.relative_to(site_path)}: {what}: …{context}…")
    assert not problems, "\n".join(problems)
