"""The static site (``make site``): every page exists, every internal link and image resolves.

The site is built into a temporary folder from the committed outputs (which
are a clean run, checked by test_notebooks.py and strict nbval); one more test
executes lesson 00 afresh, the path ``make site`` takes for every lesson.
"""
from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "tools"))
import build_site  # noqa: E402

LESSONS = build_site.lesson_paths()
STEMS = [p.stem for p in LESSONS]
STDERR = 'data-mime-type="application/vnd.jupyter.stderr"'


class Links(HTMLParser):
    """Collects href/src targets and the ids a page defines."""

    def __init__(self):
        super().__init__()
        self.targets, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.targets.append((tag, value))
            if name in ("id", "name") and value:
                self.ids.add(value)


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "_site"
    build_site.build(out, committed=True)
    return out


def test_index_and_one_page_per_lesson(site):
    assert (site / "index.html").is_file()
    assert sorted(p.stem for p in site.glob("[0-9][0-9]_*.html")) == STEMS
    index_links = {target for _, target in parse(site / "index.html").targets}
    assert {f"{stem}.html" for stem in STEMS} <= index_links


@pytest.mark.parametrize("page", ["index"] + STEMS)
def test_internal_links_and_images_resolve(site, page):
    path = site / f"{page}.html"
    links = parse(path)
    checked = 0
    for tag, target in links.targets:
        parts = urlsplit(target)
        if parts.scheme or target.startswith("//"):
            continue  # external (CDN scripts, references) or data: images
        # a browser matches the fragment as written, then percent-decoded
        fragments = {parts.fragment, unquote(parts.fragment)}
        if not parts.path:
            assert fragments & links.ids, f"{page}: no anchor #{parts.fragment}"
        else:
            resolved = (path.parent / unquote(parts.path)).resolve()
            assert resolved.is_file(), f"{page}: <{tag}> {target} does not resolve"
            assert site.resolve() in resolved.parents, f"{page}: {target} leaves the site"
            if parts.fragment and resolved.suffix == ".html":
                assert fragments & parse(resolved).ids, f"{page}: no anchor {target}"
        checked += 1
    assert checked > 0, f"{page}: no internal link at all (not even to the index)"


@pytest.mark.parametrize("path", LESSONS, ids=STEMS)
def test_lesson_images_are_copied_and_linked(site, path):
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    page = (site / f"{path.stem}.html").read_text(encoding="utf-8")
    for name in sorted(set(build_site.re.findall(r"\.\./images/([\w.-]+)", markdown))):
        assert f'src="images/{name}"' in page, f"{path.stem}: image {name} not linked"
        assert (site / "images" / name).is_file()


@pytest.mark.parametrize("path", LESSONS, ids=STEMS)
def test_explorers_say_how_to_run_live_and_the_figure_follows(site, path):
    nb = nbformat.read(path, as_version=4)
    explorers = sum(build_site.is_explorer_cell(c) for c in nb.cells)
    page = (site / f"{path.stem}.html").read_text(encoding="utf-8")
    assert page.count('class="course-note"') == explorers
    assert "make lab" in page and "widget-view+json" not in page and "unpkg" not in page
    pieces = page.split('class="course-note"')[1:]
    for k, piece in enumerate(pieces, start=1):
        assert "data:image/png;base64" in piece, f"{path.stem}: no figure after explorer {k}"
    assert STDERR not in page, f"{path.stem}: error or stderr output on the page"


def test_executing_a_lesson_for_the_site(tmp_path):
    """The default path of `make site`: run the notebook afresh, then convert it."""
    pages = build_site.build(tmp_path / "_site", only="00")
    assert [p.name for p in pages] == ["index.html", "00_start_here.html"]
    page = pages[1].read_text(encoding="utf-8")
    assert STDERR not in page and 'class="course-note"' in page
    assert "environment matches the pinned versions" in page


def test_refuses_to_empty_a_folder_it_did_not_build(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SystemExit):
        build_site.build(tmp_path, committed=True)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
