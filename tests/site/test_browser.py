"""The built site in headless chromium (Playwright, sync API): every page and widget at
desktop and phone width loads without console errors, without asking any other host for
anything and without horizontal overflow; widgets play, step, reset and respond to the
keyboard; embeds load lazily and work; the landing page does not shift as it loads."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.site.serve import browser_context
from vizgen import paths
from vizgen.registry import WIDGETS

pytestmark = pytest.mark.browser

VIEWPORTS = {"desktop": (1280, 900), "phone": (375, 812)}
LOCAL_HOST = "127.0.0.1"
# What a widget shows in its end state, and how its first caption starts (per widget).
FINAL_TEXT = {"online-softmax": ('[data-field="check"]', "softmax(s)·V directly")}
FIRST_CAPTION = {"online-softmax": "Before any tile"}
EMBED_MARK = re.compile(r'<figure class="viz-embed"')

# Any element whose box reaches past the viewport's right edge, unless nobody can see
# that part: hidden (display, visibility, opacity), screen-reader-only text, KaTeX's
# MathML copy, or clipped by an ancestor below <body> that clips or scrolls (code
# blocks, div.math-display, KaTeX's own clip boxes, SVG viewports) and itself fits.
# <html> and <body> do not count as clips: Material clips overflow at the root, which
# is exactly what hides a real overflow from scrollWidth.
OVERFLOW_JS = """() => {
  const vw = window.innerWidth, slack = 1;
  const root = document.documentElement;
  const describe = (el) => {
    const cls = typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + cls;
  };
  const offenders = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || r.right <= vw + slack) continue;
    if (el.closest('.sr-only, .katex-mathml')) continue;
    if (el.checkVisibility && !el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    let clipped = false;
    for (let a = el.parentElement; a && a !== document.body && a !== root; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible' && a.getBoundingClientRect().right <= vw + slack) { clipped = true; break; }
    }
    if (clipped) continue;
    offenders.push(describe(el) + ' right=' + Math.round(r.right));
  }
  return {scrollWidth: root.scrollWidth, innerWidth: vw, offenders: offenders.slice(0, 12)};
}"""

# CLS as Chrome reports it: the largest session window (gaps < 1 s, windows <= 5 s)
# of layout shifts not caused by input; the plain sum is returned as well.
CLS_JS = """() => new Promise((resolve) => {
  const entries = [];
  const observer = new PerformanceObserver((list) => entries.push(...list.getEntries()));
  observer.observe({type: 'layout-shift', buffered: true});
  setTimeout(() => {
    entries.push(...observer.takeRecords());
    observer.disconnect();
    let total = 0, cls = 0, window = 0, first = 0, last = 0;
    const sources = [];
    for (const e of entries) {
      if (e.hadRecentInput) continue;
      total += e.value;
      if (window && e.startTime - last < 1000 && e.startTime - first < 5000) window += e.value;
      else { window = e.value; first = e.startTime; }
      last = e.startTime;
      cls = Math.max(cls, window);
      for (const s of e.sources || []) if (s.node && s.node.nodeType === 1) sources.push(s.node.tagName + '.' + s.node.className);
    }
    resolve({cls, total, count: entries.length, sources: sources.slice(0, 8)});
  }, 200);
})"""


class Session:
    """One browser context per viewport: requests to any other host are recorded and
    aborted, so nothing leaks off the machine."""

    def __init__(self, browser, base: str, width: int, height: int, reduced_motion: bool = False):
        self.base = base
        self.context = browser_context(browser, width, height, reduced_motion=reduced_motion)
        self.external: list[str] = []
        self.context.route("**/*", self._route)

    def _route(self, route):
        if urlsplit(route.request.url).hostname == LOCAL_HOST:
            route.continue_()
        else:
            self.external.append(route.request.url)
            route.abort()

    def open(self, rel: str, wait_until: str = "load"):
        page = self.context.new_page()
        page.errors = []  # console errors and uncaught exceptions, page and frames
        page.requests_elsewhere = []
        page.on("console", lambda m: page.errors.append(f"console.{m.type}: {m.text} ({m.location})")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: page.requests_elsewhere.append(r.url)
                if urlsplit(r.url).hostname not in (LOCAL_HOST, None) and not r.url.startswith(("data:", "blob:"))
                else None)
        if rel is not None:
            page.goto(f"{self.base}/{rel}", wait_until=wait_until)
        return page

    def close(self):
        self.context.close()


@pytest.fixture(scope="module", params=list(VIEWPORTS), ids=list(VIEWPORTS))
def session(request, browser, site_url):
    width, height = VIEWPORTS[request.param]
    s = Session(browser, site_url, width, height)
    s.name = request.param
    yield s
    s.close()


def _all_pages(site: Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                  if p.name != "404.html" and "assets" not in p.relative_to(site).parts)


def _embed_pages(site: Path) -> list[str]:
    return [rel for rel in _all_pages(site) if EMBED_MARK.search((site / rel).read_text(encoding="utf-8"))]


def _scroll_through(page, pause_ms: int = 120):
    page.evaluate("window.scrollTo(0, 0)")
    height = page.evaluate("document.documentElement.scrollHeight")
    step = page.evaluate("Math.max(200, Math.floor(window.innerHeight * 0.8))")
    for y in range(0, height + step, step):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(pause_ms)


def _overflow_problems(target, where: str) -> list[str]:
    result = target.evaluate(OVERFLOW_JS)
    problems = []
    if result["scrollWidth"] > result["innerWidth"]:
        problems.append(f"{where}: scrollWidth {result['scrollWidth']} > innerWidth {result['innerWidth']}")
    if result["offenders"]:
        problems.append(f"{where}: past the right edge ({result['innerWidth']}px): " + "; ".join(result["offenders"]))
    return problems


def _embedded_frame(page, index: int, timeout: float = 10_000):
    """The Frame of the index-th embed, once its widget's player is wired."""
    handle = page.locator("figure.viz-embed iframe").nth(index).element_handle()
    # The runtime marks the page ready once every widget script has run.
    page.wait_for_function("el => { const d = el.contentDocument;"
                           " return !!(d && d.documentElement) && d.documentElement.dataset.vizReady === 'true'; }",
                           arg=handle, timeout=timeout)
    frame = handle.content_frame()
    assert frame is not None
    return frame


def _pos(target) -> tuple[int, int]:
    text = target.locator(".viz-pos").inner_text().strip()
    match = re.fullmatch(r"(\d+) / (\d+)", text)
    assert match, f"unexpected position text {text!r}"
    return int(match.group(1)), int(match.group(2))


def _caption(target) -> str:
    loc = target.locator('[data-field="caption"]')
    return loc.inner_text() if loc.count() else ""


def _state(target) -> str:
    """What the widget shows, as text: changes whenever a step changes anything."""
    return target.locator(".viz-stage").first.inner_text()


def _wait_pos(target, text: str, timeout: float = 5_000):
    target.locator(".viz-pos").filter(has_text=re.compile(rf"^{re.escape(text)}$")).wait_for(timeout=timeout)


# --------------------------------------------------------------------------- every page


def test_pages_load_cleanly_without_overflow(session, site_path):
    """Every page and widget page: no console errors, no other host, no horizontal
    overflow; embedded widgets are checked inside their frames too."""
    problems = []
    pages = _all_pages(site_path)
    assert "index.html" in pages
    for rel in pages:
        page = session.open(rel)
        try:
            page.wait_for_load_state("networkidle")
            _scroll_through(page, pause_ms=60)
            page.evaluate("window.scrollTo(0, 0)")
            problems += _overflow_problems(page, f"{rel} @{session.name}")
            if page.locator(".viz-player").count():  # a widget page: its end state fits too
                page.evaluate("document.activeElement && document.activeElement.blur()")
                page.keyboard.press("End")
                page.wait_for_timeout(600)
                problems += _overflow_problems(page, f"{rel} (last step) @{session.name}")
            for i in range(page.locator("figure.viz-embed").count()):
                page.locator("figure.viz-embed").nth(i).scroll_into_view_if_needed()
                frame = _embedded_frame(page, i)
                page.wait_for_timeout(300)  # let the frame settle at its reported height
                where = f"{rel} embed {i} ({frame.url.rsplit('/', 1)[-1]}) @{session.name}"
                problems += _overflow_problems(frame, where)
                if frame.locator(".viz-player").count():
                    frame.focus(".viz-scrub")
                    page.keyboard.press("End")
                    page.wait_for_timeout(600)
                    problems += _overflow_problems(frame, where + " (last step)")
                    problems += _overflow_problems(page, f"{rel} with embed {i} at its last step @{session.name}")
            page.wait_for_timeout(200)
            problems += [f"{rel} @{session.name}: {e}" for e in page.errors]
            problems += [f"{rel} @{session.name}: requested {u}" for u in page.requests_elsewhere]
        finally:
            page.close()
    problems += [f"@{session.name}: request to another host aborted: {u}" for u in session.external]
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- widgets


def _has_player(page) -> bool:
    page.wait_for_function("() => document.documentElement.dataset.vizReady === 'true'")
    return page.locator(".viz-player").count() > 0


@pytest.mark.parametrize("widget", WIDGETS, ids=lambda w: w.name)
def test_widget_controls_change_what_it_shows(session, widget):
    """Every toggle, slider and select of a widget (marked data-control) changes the figure."""
    page = session.open(paths.WIDGET_URL.format(name=widget.name))
    try:
        controls = page.locator("[data-control]")
        if not _has_player(page):
            assert controls.count(), "a widget without a player needs controls marked data-control"
        for i in range(controls.count()):
            control = controls.nth(i)
            if not control.is_visible():
                continue  # e.g. behind the phone layout's toggle
            before = _state(page)
            tag = control.evaluate("el => el.tagName")
            if tag == "SELECT":
                values = control.evaluate("el => [...el.options].map(o => o.value)")
                current = control.input_value()
                control.select_option(next(v for v in values if v != current))
            elif tag == "INPUT" and control.get_attribute("type") == "range":
                control.focus()
                page.keyboard.press("End" if control.input_value() != control.get_attribute("max") else "Home")
            else:
                if control.get_attribute("aria-pressed") == "true":
                    continue  # already showing: choose another one
                control.click()
            page.wait_for_timeout(600)
            assert _state(page) != before, f"control {i} ({tag}) of {widget.name} changed nothing"
        assert not page.errors, page.errors
        assert not page.requests_elsewhere, page.requests_elsewhere
    finally:
        page.close()


@pytest.mark.parametrize("widget", WIDGETS, ids=lambda w: w.name)
def test_widget_player(session, widget):
    page = session.open(paths.WIDGET_URL.format(name=widget.name))
    try:
        if not _has_player(page):
            pytest.skip(f"{widget.name} is not sequential: it has no player")
        first, count = _pos(page)
        assert first == 1, f"a widget starts at step 1 (without reduced motion), not {first}"
        assert count > 1, "a widget with a single state cannot be stepped"
        first_caption, first_state = _caption(page), _state(page)
        if widget.name in FIRST_CAPTION:
            assert first_caption.startswith(FIRST_CAPTION[widget.name]), first_caption

        # Step changes the visible state.
        page.click('[data-act="step"]')
        _wait_pos(page, f"2 / {count}")
        assert _caption(page) != first_caption or not first_caption
        page.wait_for_timeout(500)  # tweens settle
        assert _state(page) != first_state

        # Reset returns to the first step.
        page.click('[data-act="reset"]')
        _wait_pos(page, f"1 / {count}")
        assert _caption(page) == first_caption

        # Keyboard: ArrowRight steps, ArrowLeft goes back, End jumps to the last, Home resets.
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("ArrowRight")
        _wait_pos(page, f"2 / {count}")
        page.keyboard.press("ArrowLeft")
        _wait_pos(page, f"1 / {count}")
        page.keyboard.press("End")
        _wait_pos(page, f"{count} / {count}")
        if widget.name in FINAL_TEXT:
            selector, text = FINAL_TEXT[widget.name]
            assert text in page.locator(selector).inner_text()
        page.keyboard.press("Home")
        _wait_pos(page, f"1 / {count}")

        # Play at 4x advances on its own, then stops at the end.
        if not page.locator(".viz-speed").is_visible():  # phones tuck it behind "More controls"
            page.click('[data-act="more"]')
        page.select_option(".viz-speed", "4", timeout=5_000)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.click('[data-act="play"]')
        assert page.get_attribute('[data-act="play"]', "aria-pressed") == "true"
        page.wait_for_function("() => !/^1 \\//.test(document.querySelector('.viz-pos').textContent)", timeout=5_000)
        _wait_pos(page, f"{count} / {count}", timeout=count * 2_000)
        page.wait_for_timeout(800)
        assert _pos(page) == (count, count), "playback moved past the end"
        assert page.get_attribute('[data-act="play"]', "aria-pressed") == "false", "still playing at the end"
        assert page.locator(".viz-play-label").inner_text() == "Play"

        assert not page.errors, page.errors
        assert not page.requests_elsewhere, page.requests_elsewhere
        assert not session.external, session.external
    finally:
        page.close()


@pytest.mark.parametrize("widget", WIDGETS, ids=lambda w: w.name)
def test_widget_reduced_motion_shows_the_end_state(browser, site_url, widget):
    reduced = Session(browser, site_url, *VIEWPORTS["desktop"], reduced_motion=True)
    try:
        page = reduced.open(paths.WIDGET_URL.format(name=widget.name))
        if not _has_player(page):
            pytest.skip(f"{widget.name} is not sequential: nothing animates to an end state")
        count = int(page.get_attribute(".viz-scrub", "max")) + 1
        _wait_pos(page, f"{count} / {count}")
        if widget.name in FINAL_TEXT:
            selector, text = FINAL_TEXT[widget.name]
            final = page.locator(selector)
            assert final.is_visible()
            assert text in final.inner_text()
        assert not page.errors, page.errors
        assert not reduced.external, reduced.external
    finally:
        reduced.close()


# --------------------------------------------------------------------------- embeds


def test_embeds_load_lazily_and_work(session, site_path):
    """The embed's iframe stays unloaded while far off-screen, loads once scrolled into
    view, and the widget inside steps.

    Chromium starts loading a lazy frame thousands of pixels before it enters the
    viewport, and the landing page is shorter than that, so on the real page the frame
    always loads at once. The laziness sub-check therefore serves the page with a
    12000 px spacer before the first embed (nothing else changed): the embed's own
    markup, CSS and scripts must then leave the frame at about:blank."""
    pages = _embed_pages(site_path)
    if not pages:
        pytest.skip("no page embeds a widget yet")
    for rel in pages:
        html = (site_path / rel).read_text(encoding="utf-8")
        spaced = EMBED_MARK.sub('<div data-test-spacer style="height:12000px"></div>\\g<0>', html, count=1)
        page = session.open(None)
        try:
            page.route(f"{session.base}/{rel}", lambda route: route.fulfill(
                body=spaced, content_type="text/html; charset=utf-8"))
            page.goto(f"{session.base}/{rel}", wait_until="load")
            page.wait_for_timeout(1_000)
            state = page.evaluate("""() => [...document.querySelectorAll('figure.viz-embed iframe')].map(f => {
                const d = f.contentDocument; return d ? d.URL : 'cross-origin'; })""")
            assert state[0] == "about:blank", f"{rel}: far off-screen embed loaded anyway: {state}"
            page.unroute(f"{session.base}/{rel}")

            # Scrolled into view, it loads and works.
            count = page.locator("figure.viz-embed").count()
            for i in range(count):
                page.locator("figure.viz-embed").nth(i).scroll_into_view_if_needed()
                frame = _embedded_frame(page, i)
                assert frame.url.endswith(".html")
                if not frame.locator(".viz-player").count():
                    before = _state(frame)
                    control = frame.locator("[data-control]:visible").last
                    control.click()
                    frame.wait_for_timeout(600)
                    assert _state(frame) != before, f"{rel}: embed {i}'s control changed nothing"
                    continue
                pos, total = _pos(frame)
                before = (frame.locator(".viz-pos").inner_text(), _caption(frame))
                frame.click('[data-act="reset"]' if pos == total else '[data-act="step"]')
                expected = f"1 / {total}" if pos == total else f"{pos + 1} / {total}"
                _wait_pos(frame, expected)
                assert (frame.locator(".viz-pos").inner_text(), _caption(frame)) != before
            assert not page.errors, page.errors
            assert not page.requests_elsewhere, page.requests_elsewhere
            assert not session.external, session.external
        finally:
            page.close()


# --------------------------------------------------------------------------- layout shift


def test_landing_page_layout_shift(session):
    page = session.open("index.html")
    try:
        page.wait_for_load_state("networkidle")
        _scroll_through(page, pause_ms=250)
        for i in range(page.locator("figure.viz-embed").count()):
            page.locator("figure.viz-embed").nth(i).scroll_into_view_if_needed()
            _embedded_frame(page, i)
        page.wait_for_timeout(800)
        result = page.evaluate(CLS_JS)
        print(f"\nCLS landing page @{session.name} {VIEWPORTS[session.name]}: "
              f"{result['cls']:.4f} (sum of all shifts {result['total']:.4f}, {result['count']} entries)"
              + (f" sources {result['sources']}" if result["sources"] else ""))
        assert result["cls"] < 0.1, result
        assert result["total"] < 0.1, result
        assert not page.errors, page.errors
        assert not page.requests_elsewhere and not session.external, session.external
    finally:
        page.close()


def test_embed_frames_fit_their_widgets(session, site_path):
    """A frame is its reserved box, or its widget's height if taller: never more, even
    after a full-page capture resizes the viewport (which once left 4000 px frames)."""
    for rel in _embed_pages(site_path):
        page = session.open(rel, wait_until="networkidle")
        try:
            page.screenshot(full_page=True)
            _scroll_through(page, pause_ms=150)
            page.wait_for_timeout(500)
            for i in range(page.locator("figure.viz-embed").count()):
                frame = _embedded_frame(page, i)
                box = page.locator(".viz-embed-frame").nth(i).bounding_box()
                content = frame.evaluate("document.querySelector('.viz-shell').scrollHeight")
                reserved = max(box["width"] * 9 / 16, 430) if session.name == "desktop" else box["height"]
                assert box["height"] <= max(reserved, content) + 2, (rel, i, box, content)
        finally:
            page.close()
