"""The static book (``make site``): every page, link and image resolves, nothing loads from
another host, and the lessons read as a course.

The site is built once, into a temporary folder, from the committed outputs
(a clean run, checked by test_notebooks.py and strict nbval), as ``make
site`` does by default, with every Sphinx warning an error. What a page
should hold is read from the committed notebooks (their headings, diagrams,
explorers and widget state), not from the build script. One more test runs
``--execute`` on a tiny notebook of its own. The browser suite loads some
pages in Chromium with every request recorded (tests/browser/test_site_offline.py).
"""
from __future__ import annotations

import ast
import html
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
from tools import build_site  # noqa: E402

LESSONS = sorted(p for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STEMS = [p.stem for p in LESSONS]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STDERR = ("output stderr", "data-mime-type=\"application/vnd.jupyter.stderr\"")
# Tests that start kernels or servers share one xdist worker, so they never start at once.
pytestmark = [
    pytest.mark.xdist_group("kernels"),
    pytest.mark.filterwarnings(  # the theme's and MyST's calls of old Sphinx APIs
        "ignore:.*is deprecated. Check CHANGES for Sphinx API modifications"),
]
# Where a page makes the browser fetch something (a link to read, <a href>, is not a fetch).
FETCHING = {("script", "src"), ("link", "href"), ("img", "src"), ("img", "srcset"),
            ("source", "src"), ("source", "srcset"), ("iframe", "src"), ("video", "src"),
            ("video", "poster"), ("audio", "src"), ("embed", "src"), ("object", "data"),
            ("input", "src"), ("track", "src")}
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""")


class Page(HTMLParser):
    """What one HTML page refers to: (tag, attribute, value), the ids it defines, inline
    styles and scripts, and the text of a few elements the tests look at."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs, self.ids, self.styles, self.scripts = [], set(), [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("href", "src", "srcset", "poster", "data"):
                self.refs.append((tag, name, value))
            if name in ("id", "name"):
                self.ids.add(value)
            if name == "style":
                self.styles.append(value)
        self._in = tag if tag in ("style", "script") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "style":
            self.styles.append(data)
        elif self._in == "script":
            self.scripts.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def external(url: str) -> bool:
    parts = urlsplit(url.strip())
    return url.strip().startswith("//") or parts.scheme not in ("", "data", "blob", "about")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "_site"
    build_site.build(out, strict=True)  # a Sphinx warning (broken link, bad markup) fails
    assert sorted(p.name for p in out.parent.iterdir()) == ["_site"], "files left beside it"
    return out


def pages(site: Path) -> list[Path]:
    """Every page (not the theme's templates left in _static/)."""
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)


def lesson_page(site: Path, stem: str) -> Path:
    return site / "notebooks" / f"{stem}.html"


def test_index_and_one_page_per_lesson(site):
    assert (site / "index.html").is_file()
    assert sorted(p.stem for p in (site / "notebooks").glob("*.html")) == STEMS
    index_links = {value for _, _, value in parse(site / "index.html").refs}
    assert {f"notebooks/{stem}.html" for stem in STEMS} <= index_links
    assert (site / "search.html").is_file() and (site / "searchindex.js").is_file()


@pytest.mark.parametrize("stem", STEMS)
def test_sidebar_lists_every_lesson_and_the_page_its_sections(site, stem):
    """The sidebar links every lesson; the page's table of contents has its ## sections."""
    text = lesson_page(site, stem).read_text(encoding="utf-8")
    nav = text[text.index('class="bd-links'):]
    nav = nav[:nav.index("</nav>")]
    for other in STEMS:
        assert f'href="{other}.html"' in nav or (other == stem and 'href="#"' in nav), (
            f"{stem}: the sidebar has no link to {other}")
    toc = text[text.index('id="pst-page-toc-nav"'):]
    toc = toc[:toc.index("</nav>")]
    nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
    sections = [m.group(1).strip() for c in nb.cells if c.cell_type == "markdown"
                for m in re.finditer(r"^##\s+(.+)$", c.source, flags=re.M)]
    assert sections, f"{stem}: no ## section in the notebook"
    shown = _letters(toc)
    missing = [s for s in sections if _letters(s, markup=False) not in shown]
    assert not missing, f"{stem}: sections not in the page's contents: {missing}"


def _letters(text: str, markup: bool = True) -> str:
    """Only the letters and digits of some HTML (``markup``) or plain text, lower-cased."""
    if markup:
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return re.sub(r"[\W_]+", "", text).lower()


def _folded(text: str) -> list[str]:
    """The letters of each folded cell input ("Show code cell source") of a page."""
    return [_letters(block) for block in re.findall(
        r'<details class="[^"]*hide above-input[^"]*">(.*?)</details>', text, flags=re.S)]


def test_every_page_link_and_image_resolves(site):
    problems, checked = [], 0
    for path in pages(site):
        page = parse(path)
        for tag, name, value in page.refs:
            if external(value) or value.startswith(("data:", "mailto:")):
                continue
            for target in ([v.split()[0] for v in value.split(",")] if name == "srcset"
                           else [value]):
                parts = urlsplit(target)
                fragments = {parts.fragment, unquote(parts.fragment)}
                checked += 1
                if not parts.path:
                    if parts.fragment and not fragments & page.ids:
                        problems.append(f"{path.name}: no anchor #{parts.fragment}")
                    continue
                resolved = (path.parent / unquote(parts.path)).resolve()
                if not resolved.is_file():
                    problems.append(f"{path.relative_to(site)}: <{tag} {name}={target}> "
                                    f"does not resolve")
                elif site.resolve() not in resolved.parents:
                    problems.append(f"{path.relative_to(site)}: {target} leaves the site")
                elif parts.fragment and resolved.suffix == ".html" and not (
                        fragments & parse(resolved).ids):
                    problems.append(f"{path.relative_to(site)}: no anchor {target}")
    assert checked > 100
    assert not problems, "\n".join(problems[:30])


def fetched_from_elsewhere(site: Path) -> list[str]:
    """Every script, stylesheet, image, font or frame that a page or a stylesheet of
    ``site`` would fetch from another host (links to read elsewhere, <a href>, are fine)."""
    problems = []
    for path in pages(site):
        page = parse(path)
        for tag, name, value in page.refs:
            if (tag, name) in FETCHING and external(value):
                problems.append(f"{path.relative_to(site)}: <{tag} {name}={value}>")
        for style in page.styles:
            problems += [f"{path.relative_to(site)}: style url {u}" for m in CSS_URL.finditer(style)
                         for u in m.groups() if u and external(u)]
        for script in page.scripts:
            problems += [f"{path.relative_to(site)}: inline script loads {u}"
                         for u in re.findall(r"""["'](https?://[^"']+)["']""", script)]
    for css in site.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        problems += [f"{css.relative_to(site)}: {u}" for m in CSS_URL.finditer(text)
                     for u in m.groups() if u and external(u)]
    return problems


def test_nothing_loads_from_another_host(site):
    problems = fetched_from_elsewhere(site)
    assert not problems, "\n".join(problems[:30])


def test_the_offline_check_finds_what_a_cdn_page_loads(tmp_path):
    """The check above, on a page that loads a script, a stylesheet and a font elsewhere."""
    (tmp_path / "index.html").write_text(
        '<html><head><script src="https://cdn.example.org/mathjax.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/css">'
        '<style>@font-face { src: url("https://fonts.example.org/a.woff2"); }</style>'
        '<link rel="stylesheet" href="local.css"></head><body>'
        '<a href="https://arxiv.org/abs/1502.03167">a paper</a>'
        '<img src="data:image/png;base64,iVBORw0KGgo="></body></html>')
    (tmp_path / "local.css").write_text("@import 'https://cdn.example.org/theme.css';")
    found = fetched_from_elsewhere(tmp_path)
    assert len(found) == 4, found
    assert not any("arxiv" in line or "data:" in line for line in found)


def test_formulas_are_typeset_by_the_sites_own_mathjax(site):
    mathjax = site / "_static" / "mathjax" / "tex-svg.js"
    assert mathjax.is_file() and mathjax.stat().st_size > 500_000
    typeset = 0
    for stem in STEMS:
        path = lesson_page(site, stem)
        scripts = [v for tag, name, v in parse(path).refs if tag == "script" and name == "src"]
        nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
        markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        formulas = len(re.findall(r"(?<![\\$])\$(?!\$)", markdown)) // 2
        rendered = path.read_text(encoding="utf-8").count('class="math notranslate nohighlight"')
        assert rendered >= formulas, f"{stem}: {formulas} inline formulas, {rendered} on the page"
        if formulas:
            assert "../_static/mathjax/tex-svg.js" in scripts, f"{stem}: {scripts}"
            typeset += 1
    assert typeset >= len(STEMS) // 2, "hardly any lesson has a formula"


@pytest.mark.parametrize("path", LESSONS, ids=STEMS)
def test_lesson_diagrams_are_the_repositorys_images(site, path):
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    page = lesson_page(site, path.stem)
    images = {Path(unquote(v)).name: (page.parent / unquote(v)).resolve()
              for tag, name, v in parse(page).refs if tag == "img" and not v.startswith("data:")}
    for name in sorted(set(re.findall(r"\.\./images/([\w.-]+)", markdown))):
        assert name in images, f"{path.stem}: diagram {name} is not on the page"
        assert images[name].read_bytes() == (REPO / "images" / name).read_bytes()


def _explorers(nb) -> list[str]:
    return [out["data"][WIDGET_VIEW]["model_id"] for c in nb.cells if c.cell_type == "code"
            for out in c.outputs if WIDGET_VIEW in out.get("data", {})]


@pytest.mark.parametrize("path", LESSONS, ids=STEMS)
def test_explorers_shown_as_saved_with_how_to_run_them_live(site, path):
    nb = nbformat.read(path, as_version=4)
    explorers = _explorers(nb)
    text = lesson_page(site, path.stem).read_text(encoding="utf-8")
    assert text.count('class="course-explorer-note"') == len(explorers)
    state = nb.metadata.get("widgets", {}).get(build_site.WIDGET_STATE, {}).get("state", {})
    blocks = text.split('class="course-explorer-note"')[1:]
    for model_id, block in zip(explorers, blocks):
        block = block[:block.find("</details>", block.find('class="course-explorer"'))
                      if "</details>" in block else None]
        assert "make lab" in block
        assert 'src="data:image/png;base64,' in block, f"{path.stem}: no figure"
        labels = _control_labels(model_id, state)
        assert labels, f"{path.stem}: the saved explorer {model_id} has no control"
        for label in labels:
            assert f"<b>{label}</b>" in block, f"{path.stem}: control {label!r} not shown"
    assert "widget-state+json" not in text and "widget-view+json" not in text
    assert "require.js" not in text and "embed-amd" not in text


def _control_labels(model_id, state, seen=None) -> list[str]:
    """The descriptions of the sliders, drop-downs and check boxes under a saved widget."""
    model = state.get(model_id, {})
    labels = []
    if model.get("model_name", "").endswith(("SliderModel", "DropdownModel", "CheckboxModel")):
        labels.append(model["state"].get("description", ""))
    for child in model.get("state", {}).get("children", []):
        labels += _control_labels(child.replace("IPY_MODEL_", ""), state)
    return labels


@pytest.mark.parametrize("path", LESSONS, ids=STEMS)
def test_scaffolding_is_folded_and_every_lesson_says_how_to_run_it(site, path):
    page = lesson_page(site, path.stem)
    text = page.read_text(encoding="utf-8")
    assert "NBVAL_" not in text, f"{path.stem}: nbval's markers are shown"
    assert not any(marker in text for marker in STDERR), f"{path.stem}: stderr on the page"
    assert "In&nbsp;[" not in text and "In [" not in text
    nb = nbformat.read(path, as_version=4)
    folded = _folded(text)
    for cell in nb.cells:
        if any(WIDGET_VIEW in out.get("data", {}) for out in cell.get("outputs", [])):
            code = _letters(cell.source, markup=False)
            assert any(code in block for block in folded), (
                f"{path.stem}: the explorer's code {cell.source!r} is not folded")
    assert "Run this lesson yourself" in text and f"my-notebooks/{path.stem}.ipynb" in text
    downloads = [v for tag, name, v in parse(page).refs
                 if tag == "a" and v.endswith(f"{path.stem}.ipynb")]
    assert downloads, f"{path.stem}: no download link"
    assert (page.parent / unquote(downloads[0])).resolve().read_bytes() == path.read_bytes()


def _mostly_checks(source: str) -> bool:
    """At least half of the cell's statements are asserts or assert_* calls (maybe assigned)."""
    def is_check(stmt):
        if isinstance(stmt, ast.Assert):
            return True
        call = stmt.value if isinstance(stmt, (ast.Expr, ast.Assign)) else None
        if not isinstance(call, ast.Call):
            return False
        func = call.func
        return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                ).startswith("assert_")
    body = ast.parse(source).body
    return bool(body) and 2 * sum(map(is_check, body)) >= len(body)


def test_check_cells_are_folded_but_their_checks_shown(site):
    """A cell that mostly checks: its code folded, its printed ✓ lines on the page."""
    path = REPO / "notebooks" / "03_batchnorm_forward.ipynb"
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and _mostly_checks(c.source)]
    assert cells, "lesson 03 has no cell that mostly checks"
    text = lesson_page(site, path.stem).read_text(encoding="utf-8")
    folded, page = _folded(text), _letters(text)
    for cell in cells:
        printed = "".join(o.get("text", "") for o in cell.outputs)
        assert "✓" in printed and _letters(printed, markup=False) in page, "checks not shown"
        assert any(_letters(cell.source, markup=False) in block for block in folded), (
            f"the check cell {cell.source.splitlines()[0]!r} is not folded")


def test_execute_runs_the_notebooks_afresh(tmp_path, monkeypatch):
    """--execute: each notebook is run in a new kernel before it is converted."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 00 · A lesson\n\nSome text."),
        nbformat.v4.new_code_cell("print('six times seven is', 6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, notebooks / "00_tiny.ipynb")
    monkeypatch.setattr(build_site, "NOTEBOOKS", notebooks)
    monkeypatch.setattr(build_site, "REPO", tmp_path)  # no images/, no README
    committed = build_site.build(tmp_path / "committed", strict=True)
    assert "six times seven is 42" not in committed[1].read_text(encoding="utf-8")
    pages = build_site.build(tmp_path / "_site", execute_notebooks=True, strict=True)
    assert [p.name for p in pages] == ["index.html", "00_tiny.html"]
    assert "six times seven is 42" in pages[1].read_text(encoding="utf-8")
    assert nbformat.read(notebooks / "00_tiny.ipynb", as_version=4).cells[1].outputs == []


def test_refuses_to_empty_a_folder_it_did_not_build(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SystemExit):
        build_site.build(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_lessons_are_found_by_pattern():
    assert [p.name for p in build_site.lesson_paths()] == [p.name for p in LESSONS]
    assert [p.stem for p in build_site.lesson_paths("03,05")] == [
        s for s in STEMS if s.startswith(("03", "05"))]
