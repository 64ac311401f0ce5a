"""Build the course as a static HTML site (``make site``): an index and one page per lesson.

Usage: python tests/tools/build_site.py [OUT] [--committed] [--only PREFIX]

- Every ``notebooks/NN_name.ipynb`` is executed afresh, top to bottom, in a
  new kernel started in ``notebooks/`` (as ``make notebooks`` does, but
  nothing is written back), so the site shows what the code does today.
  ``--committed`` converts the committed outputs instead: they are a clean
  run too (a test checks their execution counts, and strict nbval re-runs
  every notebook in CI and compares the outputs), and that takes seconds
  instead of minutes.
- Each notebook becomes ``OUT/NN_name.html`` (nbconvert's lab template),
  with a bar linking to the index and to the previous and next lessons.
  Links between lessons (``NN_name.ipynb``) become ``NN_name.html``;
  ``../images/x.png`` becomes ``images/x.png`` and ``images/`` is copied.
- A slider explorer needs a kernel: its widget output is replaced by a
  note saying how to run the lesson live (``make lab``); the cell after
  it already shows the same view, drawn at the default setting.
- ``OUT/index.html`` is the lesson map: the README's lesson table where it
  describes a lesson, else the notebook's title.
"""
from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MARKER = ".course-site"  # marks a folder this script built (and may therefore empty)
LESSON_LINK = re.compile(r"(\]\(|href=[\"'])(\d\d_[\w-]+)\.ipynb")
IMAGE_LINK = re.compile(r"(\]\(|src=[\"'])\.\./images/")
README_ROW = re.compile(r"^\|\s*\[([^\]]+)\]\(notebooks/(\d\d_[\w-]+)\.ipynb\)\s*\|\s*(.*?)\s*\|\s*$")

STYLE = """<style>
.course-nav { font: 14px/1.4 system-ui, sans-serif; padding: 8px 16px; background: #f4f6fa;
  border-bottom: 1px solid #d8dde8; display: flex; gap: 24px; }
.course-nav a { color: #1a56b0; text-decoration: none; }
.course-note { border-left: 4px solid #e0a400; background: #fff8e1; padding: 8px 12px;
  margin: 4px 0; font: 14px/1.4 system-ui, sans-serif; }
</style>"""

NOTE = """<div class="course-note"><b>Interactive explorer.</b> Its sliders need a running
Python kernel, which this static page does not have. To run the lesson live, clone the
repository and run <code>make lab</code>, then open <code>{notebook}</code> in JupyterLab
and run all cells. The figure below shows the same view at the default setting.</div>"""

INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Batch normalization, hands on</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 960px; margin: 32px auto; padding: 0 16px; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 8px; text-align: left; vertical-align: top; }}
a {{ color: #1a56b0; }}
</style></head><body>
<h1>Batch normalization, hands on</h1>
<p>An interactive Jupyter course on batch normalization, rendered as static pages with the
outputs of a full run. The slider explorers need a Python kernel: to use them, clone the
repository and run <code>make lab</code> (it installs everything and opens JupyterLab).</p>
<h2>The lessons</h2>
<table><tr><th>Lesson</th><th>What it teaches</th></tr>
{rows}
</table>
</body></html>
"""


def lesson_paths(only: str = "") -> list[Path]:
    return sorted(NOTEBOOKS.glob(f"{only}*.ipynb" if only else "[0-9][0-9]_*.ipynb"))


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


def rewrite_links(text: str) -> str:
    """Lesson links to .html pages, ../images/ to images/."""
    return IMAGE_LINK.sub(r"\1images/", LESSON_LINK.sub(r"\1\2.html", text))


def is_explorer_cell(cell) -> bool:
    return (cell.cell_type == "code" and cell.source.lstrip().startswith("# NBVAL_IGNORE_OUTPUT")
            and "explorer" in cell.source.lower())


def for_static_page(nb, notebook: str):
    """Rewrite links; replace widget outputs (they need a kernel) by the note; drop widget state."""
    nb.metadata.pop("widgets", None)
    note = nbformat.v4.new_output("display_data", data={
        "text/html": NOTE.format(notebook=html.escape(notebook)),
        "text/plain": f"Interactive explorer: run `make lab` and open {notebook} to use it."})
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source)
        elif cell.cell_type == "code":
            has_widget = any(WIDGET_VIEW in out.get("data", {}) for out in cell.outputs)
            if has_widget or is_explorer_cell(cell):
                kept = [out for out in cell.outputs if WIDGET_VIEW not in out.get("data", {})
                        and out.get("output_type") != "execute_result"]
                cell.outputs = [note] + kept
    return nb


def execute(nb, timeout: int = 900):
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def navigation(pages: list[tuple[str, str]], k: int) -> str:
    links = ['<a href="index.html">Course index</a>']
    if k > 0:
        links.append(f'<a href="{pages[k - 1][0]}.html">&larr; {html.escape(pages[k - 1][1])}</a>')
    if k + 1 < len(pages):
        links.append(f'<a href="{pages[k + 1][0]}.html">{html.escape(pages[k + 1][1])} &rarr;</a>')
    return STYLE + '<nav class="course-nav">' + "".join(links) + "</nav>"


def prepare_output(out: Path) -> None:
    """Create ``out``, or empty it if an earlier run of this script built it."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            sys.exit(f"{out} is not empty and was not built by this script: choose another folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("built by tests/tools/build_site.py\n")


def build(out: Path, committed: bool = False, only: str = "") -> list[Path]:
    """Write the site into ``out``; return the pages written (index first)."""
    paths = lesson_paths(only)
    if not paths:
        sys.exit(f"no notebooks in {NOTEBOOKS} match {only!r}")
    prepare_output(out)
    if (REPO / "images").is_dir():
        shutil.copytree(REPO / "images", out / "images")
    described = readme_lessons()
    notebooks = {p.stem: nbformat.read(p, as_version=4) for p in paths}
    titles = [(stem, notebook_title(nb, stem)) for stem, nb in notebooks.items()]
    exporter = HTMLExporter(template_name="lab")
    written = []
    for k, (stem, title) in enumerate(titles):
        nb = notebooks[stem]
        start = time.perf_counter()
        if not committed:
            execute(nb)
        body, _ = exporter.from_notebook_node(for_static_page(nb, f"notebooks/{stem}.ipynb"),
                                              resources={"metadata": {"name": title}})
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + navigation(titles, k), body,
                      count=1)
        page = out / f"{stem}.html"
        page.write_text(body, encoding="utf-8")
        written.append(page)
        how = "converted" if committed else "executed and converted"
        print(f"{page.name}: {how} in {time.perf_counter() - start:.1f} s", flush=True)
    rows = "\n".join(
        f'<tr><td><a href="{stem}.html">{html.escape(described.get(stem, (title, ""))[0])}</a>'
        f'</td><td>{html.escape(described.get(stem, ("", ""))[1])}</td></tr>'
        for stem, title in titles)
    index = out / "index.html"
    index.write_text(INDEX.format(rows=rows), encoding="utf-8")
    print(f"{index}: {len(titles)} lessons")
    return [index] + written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(REPO / "_site"))
    parser.add_argument("--committed", action="store_true",
                        help="convert the committed outputs instead of executing the notebooks")
    parser.add_argument("--only", default="", help="only notebooks whose name starts with this")
    args = parser.parse_args(argv)
    os.environ.pop("MPLBACKEND", None)  # kernels inherit it, and inline figures would vanish
    build(Path(args.out), committed=args.committed, only=args.only)


if __name__ == "__main__":
    main()
