"""Build the course as a static book (``make site``): Sphinx with myst-nb and the book theme.

Usage: python -m tools.build_site [OUT] [--execute] [--only PREFIX[,PREFIX...]]

- The lessons are every ``notebooks/NN_name.ipynb`` (found by that pattern, so
  a new lesson needs no change here), converted from their committed outputs,
  which are a clean top-to-bottom run (test_notebooks.py checks the execution
  counts, strict nbval re-runs every notebook). ``--execute`` runs each one
  afresh first, in a new kernel started in ``notebooks/``; nothing is written
  back.
- Each lesson is prepared for reading, on a copy, by rule (the committed
  notebooks are not edited): a cell that mostly checks (at least half of its
  statements an ``assert`` or a call of an ``assert_*`` helper) shows its
  output (the checked claims) with its code folded ("Show code cell
  source"); an explorer (a cell that displays a slider widget) is shown as
  it was saved, at its default setting: its title, controls and their
  values, readout and figure, read from the widget state the notebook
  stores, with a note on how to run it live, and its code folded; the cell
  after an explorer that checks it at its defaults keeps its printed checks,
  folded, without drawing the same figure again; every lesson opens with a
  note on how to run it on your machine and a download of the notebook.
- Sphinx builds the book into ``OUT`` (default ``_site/``): ``index.html``
  (the lesson table from the README and the course's start), one page per
  lesson under ``notebooks/``, a sidebar of the lessons and their sections, a
  search page. Formulas are typeset by MathJax 3 from the site's own
  ``_static/mathjax/`` (the sphinx-mathjax-offline package ships it), as SVG,
  so no font is fetched either; no widget JavaScript is loaded. Nothing on a
  page loads from another host (tests/test_site.py checks).
"""
from __future__ import annotations

import argparse
import ast
import html
import io
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
CONF_DIR = Path(__file__).resolve().parent / "site"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MARKER = ".course-site"  # marks a folder this script built (and may therefore empty)
LESSON = re.compile(r"^\d\d_[\w-]+\.ipynb$")
README_ROW = re.compile(r"^\|\s*\[([^\]]+)\]\(notebooks/(\d\d_[\w-]+)\.ipynb\)\s*\|\s*(.*?)\s*\|\s*$")
CHECK_PREFIX = "assert_"
TITLE = "Batch normalization, hands on"

RUN_LOCALLY = """:::{{admonition}} Run this lesson yourself
:class: tip course-run-locally
This page shows the lesson as it was last run. To run it, move its sliders and
try its exercises, get the course's repository and, in its folder, run
`make lab`: it installs everything the first time and opens JupyterLab on your
own copy of the lesson, `my-notebooks/{name}` (`make restore NB={number}`
resets it). You can also {{download}}`download this notebook <{download}>`
(it needs the course's `bnlib` package: `pip install -e .` in the repository).
:::
"""

EXPLORER_NOTE = """<div class="course-explorer-note"><b>Interactive explorer</b>, shown at its
default setting. Its controls need a running Python kernel: run the lesson with
<code>make lab</code> (see the note at the top of the page) and move them there.</div>"""

INDEX = """# {title}

An interactive course on **batch normalization**: from why standardized inputs
help, through exponential smoothing, the forward and backward pass, covariate
shift and training behaviour, to how TensorFlow and Keras implement it and where
it bites. Every lesson has plots, slider explorers and exercises, and every
number a lesson relies on is printed and checked.

These pages show each lesson as it was last run. The explorers and exercises
need Python: get the course's repository and run `make lab` in its folder (it
installs the pinned packages into `.venv/` the first time and opens JupyterLab
on your own copies of the lessons, in `my-notebooks/`).

## The lessons

| Lesson | What it teaches |
|---|---|
{rows}

## Every lesson's sections

```{{toctree}}
:maxdepth: 2

{toctree}
```
"""


def lesson_paths(only: str = "") -> list[Path]:
    """The lessons, ``notebooks/NN_name.ipynb``; ``only`` keeps names starting with one of
    its comma-separated prefixes."""
    prefixes = tuple(p for p in only.split(",") if p)
    return sorted(p for p in NOTEBOOKS.glob("*.ipynb")
                  if LESSON.match(p.name) and (not prefixes or p.name.startswith(prefixes)))


def notebook_title(nb, fallback: str) -> str:
    """The text of the first ``# `` heading, e.g. "00 · Start here"."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if match:
                return match.group(1).strip()
    return fallback


def readme_lessons(readme: Path = REPO / "README.md") -> dict[str, tuple[str, str]]:
    """The README's lesson table: stem -> (link text, what it teaches)."""
    rows = {}
    if readme.exists():
        for line in readme.read_text(encoding="utf-8").splitlines():
            match = README_ROW.match(line.strip())
            if match:
                rows[match.group(2)] = (match.group(1), match.group(3))
    return rows


# --- what a cell is ------------------------------------------------------------------


def widget_views(cell) -> list[str]:
    """The model ids of the widgets a code cell displays."""
    return [out["data"][WIDGET_VIEW]["model_id"] for out in cell.get("outputs", [])
            if WIDGET_VIEW in out.get("data", {})]


def _output_ignored(cell) -> bool:
    return "nbval-ignore-output" in cell.get("metadata", {}).get("tags", [])


def is_explorer_cell(cell) -> bool:
    """A cell that displays a widget, or (without outputs) is marked for nbval and names an
    explorer, as the browser suite finds them."""
    if cell.cell_type != "code":
        return False
    return bool(widget_views(cell)) or (_output_ignored(cell) and "explorer" in cell.source.lower())


def _is_check(stmt) -> bool:
    """An ``assert``, or a call of a checked-claim helper (``assert_close(...)``,
    ``checks.assert_true(...)``), possibly assigned (``_ = ...``)."""
    if isinstance(stmt, ast.Assert):
        return True
    call = stmt.value if isinstance(stmt, (ast.Expr, ast.Assign)) else None
    if not isinstance(call, ast.Call):
        return False
    func = call.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    return name.startswith(CHECK_PREFIX)


def _statements(cell) -> list:
    try:
        return ast.parse(cell.source).body
    except SyntaxError:
        return []


def check_share(cell) -> float:
    """The share of a code cell's statements that are checks (0 for no statement)."""
    body = _statements(cell) if cell.cell_type == "code" else []
    return sum(map(_is_check, body)) / len(body) if body else 0.0


def is_check_cell(cell) -> bool:
    """Scaffolding whose output is the point: at least half of the cell's statements are
    checks. (The exercise checkers, ``checks.check_*``, are the learner's tools: not these.)"""
    return check_share(cell) >= 0.5


# --- an explorer, as it was saved ----------------------------------------------------


def _widget_states(nb) -> dict:
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _number(value, fmt: str) -> str:
    try:
        return format(value, fmt or "")
    except (TypeError, ValueError):
        return str(value)


def _control(name: str, state: dict) -> str:
    """A control, drawn inert: its label and its value (and a slider's range)."""
    label = html.escape(state.get("description") or "")
    if "Slider" in name and "options" not in name.lower() and "_options_labels" not in state:
        fmt = state.get("readout_format", "")
        shown = f"{_number(state.get('value'), fmt)}"
        extra = (f" <span class=\"course-range\">({_number(state.get('min'), fmt)} to "
                 f"{_number(state.get('max'), fmt)})</span>")
    elif "_options_labels" in state:
        labels, index = state["_options_labels"], state.get("index")
        shown = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else ""
        extra = (f" <span class=\"course-range\">(one of {html.escape(', '.join(labels))})"
                 f"</span>") if len(labels) <= 8 else ""
    elif name in ("CheckboxModel", "ToggleButtonModel"):
        shown, extra = ("on" if state.get("value") else "off"), ""
    else:
        shown, extra = str(state.get("value", "")), ""
    return (f'<span class="course-control"><b>{label}</b> {html.escape(str(shown))}'
            f"{extra}</span>")


def _pieces(model_id: str, states: dict, out: list) -> None:
    """Append ("html", text) and ("png", base64) pieces that draw a widget and its children."""
    model = states.get(model_id)
    if model is None:
        return
    name, state = model.get("model_name", ""), model.get("state", {})
    if name == "ImageModel":
        for buffer in model.get("buffers", []):
            if buffer.get("path") == ["value"] and buffer.get("encoding") == "base64":
                out.append(("png", buffer["data"]))
    elif name in ("HTMLModel", "HTMLMathModel"):
        out.append(("html", f'<div class="course-widget-html">{state.get("value", "")}</div>'))
    elif name == "LabelModel":
        out.append(("html", f"<div>{html.escape(str(state.get('value', '')))}</div>"))
    elif name == "OutputModel":
        for output in state.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                _pieces(data[WIDGET_VIEW]["model_id"], states, out)
            elif "image/png" in data:
                out.append(("png", data["image/png"]))
            elif "text/html" in data:
                out.append(("html", "".join(data["text/html"])))
            elif output.get("output_type") == "stream":
                out.append(("html", f"<pre>{html.escape(''.join(output.get('text', '')))}</pre>"))
            elif "text/plain" in data:
                out.append(("html", f"<pre>{html.escape(''.join(data['text/plain']))}</pre>"))
    elif name == "ButtonModel":
        out.append(("html", f'<span class="course-button">{html.escape(state.get("description", ""))}'
                            f"</span>"))
    elif "children" in state:
        row = name in ("HBoxModel", "GridBoxModel")
        out.append(("html", f'<div class="{"course-row" if row else "course-column"}">'))
        for child in state["children"]:
            _pieces(str(child).replace("IPY_MODEL_", ""), states, out)
        out.append(("html", "</div>"))
    elif "value" in state or "_options_labels" in state:
        out.append(("html", _control(name, state)))


def explorer_outputs(nb, cell) -> list:
    """One HTML output that shows an explorer cell's widgets as saved, after the note
    (the figures inline, as ``data:`` images)."""
    states = _widget_states(nb)
    pieces: list = []
    for model_id in widget_views(cell):
        _pieces(model_id, states, pieces)
    parts = [EXPLORER_NOTE, '<div class="course-explorer">']
    for kind, value in pieces:
        parts.append(value if kind == "html" else
                     f'<img class="course-figure" alt="the explorer\'s figure at its default '
                     f'setting" src="data:image/png;base64,{value}">')
    parts.append("</div>")
    return [nbformat.v4.new_output("display_data", data={
        "text/html": "\n".join(parts), "text/plain": "(interactive explorer)"})]


# --- a lesson, prepared for reading --------------------------------------------------


def _tag(cell, tag: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def for_static_page(nb, stem: str, download: str):
    """The lesson as the site shows it (see the module docstring); ``nb`` is changed."""
    explorers = [is_explorer_cell(cell) for cell in nb.cells]
    outputs = {k: explorer_outputs(nb, cell) for k, cell in enumerate(nb.cells) if explorers[k]}
    nb.metadata.pop("widgets", None)  # no widget manager, no state in the page
    nb.metadata.pop("jupytext", None)
    after_explorer = False
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if explorers[k]:
            cell.outputs = outputs[k]
            _tag(cell, "hide-input")
        elif after_explorer and check_share(cell) > 0:
            # "At the defaults, checked": the explorer above already shows that view
            cell.outputs = [out for out in cell.outputs if "image/png" not in out.get("data", {})]
            _tag(cell, "hide-input")
        elif is_check_cell(cell):
            _tag(cell, "hide-input")
        after_explorer = explorers[k]
    note = RUN_LOCALLY.format(name=f"{stem}.ipynb", number=stem[:2], download=download)
    first = next((k for k, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells.insert(first + 1, nbformat.v4.new_markdown_cell(note))
    return nb


def execute(nb, timeout: int = 900):
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def index_page(titles: list[tuple[str, str]]) -> str:
    described = readme_lessons()
    rows = "\n".join(
        f"| [{described.get(stem, (title, ''))[0]}](notebooks/{stem}.ipynb) "
        f"| {described.get(stem, ('', ''))[1]} |" for stem, title in titles)
    toctree = "\n".join(f"notebooks/{stem}" for stem, _ in titles)
    return INDEX.format(title=TITLE, rows=rows, toctree=toctree)


# --- the build -----------------------------------------------------------------------


def prepare_output(out: Path) -> None:
    """Create ``out``, or empty it if an earlier run of this script built it."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            sys.exit(f"{out} is not empty and was not built by this script: choose another folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def write_sources(src: Path, paths: list[Path], run: bool = False) -> list[tuple[str, str]]:
    """The book's sources in ``src``: index.md, notebooks/, images/, downloads/."""
    (src / "notebooks").mkdir(parents=True)
    (src / "downloads").mkdir()
    if (REPO / "images").is_dir():
        shutil.copytree(REPO / "images", src / "images")
    titles = []
    for path in paths:
        start = time.perf_counter()
        shutil.copy2(path, src / "downloads" / path.name)  # the notebook as committed
        nb = nbformat.read(path, as_version=4)
        if run:
            execute(nb)
        titles.append((path.stem, notebook_title(nb, path.stem)))
        nbformat.write(for_static_page(nb, path.stem, f"../downloads/{path.name}"),
                       src / "notebooks" / path.name)
        how = "executed and prepared" if run else "prepared"
        print(f"{path.name}: {how} in {time.perf_counter() - start:.1f} s", flush=True)
    (src / "index.md").write_text(index_page(titles), encoding="utf-8")
    return titles


def sphinx_build(src: Path, out: Path, doctrees: Path) -> list[str]:
    """Build the HTML book; return Sphinx's warnings (one string each)."""
    from sphinx.application import Sphinx
    from sphinx.util.console import nocolor
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    nocolor()  # plain warnings, in the terminal and in the list returned
    warnings = io.StringIO()
    with patch_docutils(str(CONF_DIR)), docutils_namespace():
        app = Sphinx(str(src), str(CONF_DIR), str(out), str(doctrees), "html",
                     status=None, warning=warnings, freshenv=True, verbosity=0)
        app.build(force_all=True)
    return [line for line in warnings.getvalue().splitlines() if line.strip()]


def build(out: Path, execute_notebooks: bool = False, only: str = "",
          strict: bool = False) -> list[Path]:
    """Write the site into ``out``; return the pages of the lessons (index first).

    ``strict``: fail (SystemExit) on any Sphinx warning (a broken link, a bad directive).
    """
    paths = lesson_paths(only)
    if not paths:
        sys.exit(f"no notebooks in {NOTEBOOKS} match {only!r}")
    out = Path(out)
    prepare_output(out)
    with tempfile.TemporaryDirectory(prefix="course-site-") as work:
        src, html_dir = Path(work) / "src", Path(work) / "html"
        titles = write_sources(src, paths, execute_notebooks)
        start = time.perf_counter()
        # (into the temporary folder first: myst-nb writes a jupyter_execute/ beside it)
        warnings = sphinx_build(src, html_dir, Path(work) / "doctrees")
        sources = html_dir / "_sources"
        if sources.is_dir() and not any(sources.iterdir()):
            sources.rmdir()
        shutil.copytree(html_dir, out, dirs_exist_ok=True)
    (out / MARKER).write_text("built by tests/tools/build_site.py\n")
    (out / ".nojekyll").write_text("")  # _static/ must be served as it is
    print(f"{out}: {len(titles)} lessons, Sphinx took {time.perf_counter() - start:.1f} s")
    for line in warnings:
        print("WARNING:", line, file=sys.stderr)
    if warnings and strict:
        sys.exit(f"{len(warnings)} Sphinx warning(s)")
    return [out / "index.html"] + [out / "notebooks" / f"{stem}.html" for stem, _ in titles]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(REPO / "_site"))
    parser.add_argument("--execute", action="store_true",
                        help="run every notebook afresh instead of using the committed outputs")
    parser.add_argument("--committed", action="store_true",
                        help="use the committed outputs (the default; kept for old commands)")
    parser.add_argument("--only", default="", help="only lessons starting with these prefixes "
                                                   "(comma-separated)")
    parser.add_argument("--strict", action="store_true", help="fail on any Sphinx warning")
    args = parser.parse_args(argv)
    os.environ.pop("MPLBACKEND", None)  # kernels inherit it, and inline figures would vanish
    pages = build(Path(args.out), execute_notebooks=args.execute, only=args.only,
                  strict=args.strict)
    print(f"open {pages[0]} in a browser")


if __name__ == "__main__":
    main()
