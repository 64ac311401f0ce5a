"""The static book in Chromium, opened from disk: no request leaves the machine, formulas
are typeset, diagrams and figures load, the page raises no error.

A site of lessons 01 and 03 (formulas, diagrams, explorers) is built from the committed
outputs, as ``make site`` does, and each page is opened as a ``file://`` URL with
every request the page makes recorded: any request to another host fails the test.
"""
from __future__ import annotations


import pytest

from tools import build_site  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings(
    "ignore:.*is deprecated. Check CHANGES for Sphinx API modifications")]
ONLY = "01,03"

PAGE_STATE_JS = """() => ({
  formulas: document.querySelectorAll('mjx-container').length,
  mathErrors: document.querySelectorAll('mjx-merror').length,
  rawMath: [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container'))
            .map(e => e.textContent.slice(0, 80)),
  images: [...document.images].map(i => ({src: i.src.slice(0, 120), ok: i.complete && i.naturalWidth > 0})),
})"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "_site"
    build_site.build(out, only=ONLY)  # (links to the other lessons dangle here: not checked)
    return out


def _open(browser, url: str):
    """Open ``url``; return the page's state, every request it made and its console errors."""
    context = browser.new_context()
    page = context.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(url)
        page.wait_for_load_state("load")
        # MathJax typesets after the page has loaded
        page.wait_for_function("() => !document.querySelector('.math') || "
                               "document.querySelector('mjx-container')", timeout=30_000)
        page.wait_for_timeout(500)
        return page.evaluate(PAGE_STATE_JS), requests, errors
    finally:
        context.close()


@pytest.mark.parametrize("name", ["index"] + [p.stem for p in build_site.lesson_paths(ONLY)])
def test_page_works_offline(browser, site, name):
    path = site / ("index.html" if name == "index" else f"notebooks/{name}.html")
    state, requests, errors = _open(browser, path.as_uri())
    elsewhere = [url for url in requests if not url.startswith(("file:", "data:", "blob:"))]
    assert not elsewhere, f"{name}: requests to other hosts: {elsewhere}"
    assert not errors, f"{name}: errors in the page: {errors}"
    broken = [image["src"] for image in state["images"] if not image["ok"]]
    assert not broken, f"{name}: images that did not load: {broken}"
    if name != "index":
        assert state["formulas"] > 10, f"{name}: {state['formulas']} typeset formulas"
        assert state["mathErrors"] == 0 and not state["rawMath"], state
        assert len(state["images"]) >= 3
