# Sphinx configuration of the course's static book, built by tests/tools/build_site.py
# (`make site`), which writes the sources (index.md, notebooks/, images/) into a temporary
# folder and points Sphinx at this folder for the configuration.
import importlib.util
import shutil
from pathlib import Path

project = "Batch normalization, hands on"
author = "the course's authors"
copyright = "the course's authors"  # noqa: A001 (Sphinx's name)

extensions = ["myst_nb", "sphinx.ext.mathjax"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# The committed outputs are shown as they are (build_site.py --execute runs the notebooks
# first, itself); cells keep their stdout and would show any stderr (a test fails on it).
nb_execution_mode = "off"
nb_merge_streams = True
# No widget manager from a CDN: build_site.py replaces each explorer by its saved view.
nb_ipywidgets_js = {}

exclude_patterns = ["**/.ipynb_checkpoints", "downloads"]  # downloads/: the notebooks as committed
suppress_warnings = ["mystnb.unknown_mime_type"]

# MathJax 3 from the site itself, with SVG output (no web fonts to fetch), from the files
# that the sphinx-mathjax-offline package ships: only the ones the pages use (the TeX input
# with its extensions, loaded on demand, and the menu's accessibility parts), not its
# extension, which would copy all 24 MB.
_MATHJAX = importlib.util.find_spec("sphinx-mathjax-offline")
if _MATHJAX is None:
    raise RuntimeError("the site needs the sphinx-mathjax-offline package: make setup")
_MATHJAX_DIR = Path(list(_MATHJAX.submodule_search_locations)[0]) / "static" / "mathjax"
MATHJAX_FILES = ["tex-svg.js", "input/tex", "a11y", "sre", "ui"]
mathjax_path = "mathjax/tex-svg.js"

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,       # left: the lessons (the index lists their sections too)
    "show_toc_level": 2,          # right, "Contents": the page's sections and subsections
    "use_download_button": False,  # each lesson links to its notebook instead
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
    "navbar_persistent": [],       # one search field, in the sidebar
}
html_context = {"default_mode": "light"}


def _copy_mathjax(app, exception):
    if exception is not None:
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    for name in MATHJAX_FILES:
        source = _MATHJAX_DIR / name
        if source.is_dir():
            shutil.copytree(source, target / name, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def setup(app):
    app.connect("build-finished", _copy_mathjax)
