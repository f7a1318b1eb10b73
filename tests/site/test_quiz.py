"""The self-check gives instant feedback in the browser, with no server."""

import pytest

pytestmark = pytest.mark.browser


def _pages_with_quiz(site):
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if 'class="quiz"' in p.read_text())


def test_every_post_with_a_quiz_answers_instantly(site_path, site_url, browser):
    pages = _pages_with_quiz(site_path)
    assert pages, "no page has a self-check"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    errors = []
    try:
        for rel in pages:
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{site_url}/{rel}")
            questions = page.locator(".quiz-question")
            assert 3 <= questions.count() <= 5, f"{rel}: a self-check has 3-5 questions"
            for i in range(questions.count()):
                question = questions.nth(i)
                wrong = question.locator('input[data-correct="false"]').first
                right = question.locator('input[data-correct="true"]')
                wrong.check()
                feedback = question.locator(".quiz-feedback")
                assert feedback.inner_text().startswith("Not quite."), feedback.inner_text()
                right.check()
                assert feedback.inner_text().startswith("Right."), feedback.inner_text()
                assert question.locator(".quiz-right").count() == 1 and question.locator(".quiz-wrong").count() == 0
            page.close()
    finally:
        context.close()
    assert not errors, errors
