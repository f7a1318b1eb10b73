"""The self-check at the end of every post: a ```quiz fence holding YAML, rendered to a
small multiple-choice form that gives instant feedback in the browser (static/site/quiz.js).

    ```quiz
    - q: Why is standard attention slow at long sequence lengths?
      options:
        - a: It runs out of tensor-core FLOPs.
          why: The tensor cores sit idle; the time goes into moving S and P through HBM.
        - a: It writes and reads the N×N matrices through HBM.
          correct: true
          why: Each element costs a few FLOPs but several bytes of slow memory traffic.
    ```

Registered in mkdocs.yml as a pymdownx.superfences custom fence. A malformed quiz
fails the build with a one-line message saying what is wrong.
"""

from __future__ import annotations

import hashlib
import html

import markdown
import yaml
from pymdownx.superfences import SuperFencesException

from . import mathrender


class QuizError(SuperFencesException):
    """Raised through superfences so the build stops instead of showing raw YAML."""


def _inline(text: str) -> str:
    """Inline Markdown (emphasis, code, math) without the surrounding paragraph."""
    md = markdown.Markdown(extensions=["pymdownx.arithmatex"], extension_configs={"pymdownx.arithmatex": {"generic": True}})
    out = mathrender.render_html(md.convert(str(text)).strip())  # typeset here: data-why is an attribute
    return out[3:-4] if out.startswith("<p>") and out.endswith("</p>") else out


def _questions(source: str) -> list[dict]:
    try:
        questions = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise QuizError(f"quiz: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(questions, list) or not questions:
        raise QuizError("quiz: expected a list of questions")
    for n, question in enumerate(questions, 1):
        options = question.get("options") if isinstance(question, dict) else None
        if not question or "q" not in question or not isinstance(options, list) or len(options) < 2:
            raise QuizError(f"quiz: question {n} needs 'q' and at least two 'options'")
        if sum(bool(o.get("correct")) for o in options) != 1:
            raise QuizError(f"quiz: question {n} needs exactly one option with 'correct: true'")
        if any("a" not in o or "why" not in o for o in options):
            raise QuizError(f"quiz: every option of question {n} needs 'a' (the answer) and 'why' (one line)")
    return questions


def fence(source, language, css_class, options, md, **kwargs) -> str:
    questions = _questions(source)
    quiz_id = "quiz-" + hashlib.sha256(source.encode()).hexdigest()[:8]
    parts = [f'<div class="quiz" id="{quiz_id}">']
    for n, question in enumerate(questions, 1):
        name = f"{quiz_id}-{n}"
        parts.append(f'<fieldset class="quiz-question"><legend><span class="quiz-number">{n}</span> {_inline(question["q"])}</legend>')
        for i, option in enumerate(question["options"]):
            correct = "true" if option.get("correct") else "false"
            parts.append(
                f'<label class="quiz-option"><input type="radio" name="{name}" value="{i}" data-correct="{correct}" '
                f'data-why="{html.escape(_inline(option["why"]))}"><span>{_inline(option["a"])}</span></label>'
            )
        answer = next(o for o in question["options"] if o.get("correct"))
        parts.append('<p class="quiz-feedback" aria-live="polite"></p>')
        parts.append(f'<noscript><p class="quiz-answer">Answer: {_inline(answer["a"])} — {_inline(answer["why"])}</p></noscript>')
        parts.append("</fieldset>")
    parts.append("</div>")
    return "\n".join(parts)
