import re

import pytest

from vizgen.quiz import QuizError, fence

GOOD = """
- q: Which memory is on-chip?
  options:
    - a: HBM
      why: HBM is off-chip DRAM.
    - a: "`SRAM`"
      correct: true
      why: Shared memory sits inside each SM, $\\approx 10\\times$ faster.
"""


def render(source):
    return fence(source, "quiz", "quiz", {}, None)


def test_renders_one_fieldset_per_question_with_one_correct_option():
    html = render(GOOD)
    assert html.count('<fieldset class="quiz-question">') == 1
    assert html.count('type="radio"') == 2 and html.count('data-correct="true"') == 1
    assert "<code>SRAM</code>" in html and 'class="katex"' in html and 'class="arithmatex"' not in html
    assert "<noscript>" in html and "Answer:" in html


def test_same_source_gives_the_same_ids():
    assert render(GOOD) == render(GOOD)


@pytest.mark.parametrize("source, message", [
    ("- q: [unclosed", "not valid YAML"),
    ("just text", "expected a list"),
    ("- q: x\n  options: [{a: 1, why: y}]", "at least two"),
    ("- q: x\n  options: [{a: 1, why: y}, {a: 2, why: z}]", "exactly one option"),
    ("- q: x\n  options: [{a: 1, why: y, correct: true}, {a: 2}]", "needs 'a' (the answer) and 'why'"),
])
def test_malformed_quiz_fails_with_a_clear_line(source, message):
    with pytest.raises(QuizError, match=re.escape(message)):
        render(source)
