# The course's JupyterLab server settings. `make lab`, `make author` and the browser suite
# put this folder on JUPYTER_CONFIG_PATH (tools/course_lab.py), and set
# COURSE_LAB_MODE:
#   learner (make lab)    the lessons are the copies in my-notebooks/ (git ignores them);
#                         notebooks/ is hidden and no save may overwrite a file git tracks
#   author  (make author) the committed notebooks/, paired with notebooks/scripts/
# Settings in your own ~/.jupyter still take precedence over these.
import os
import subprocess
import warnings
from pathlib import Path

c = get_config()  # noqa: F821 (defined by the configuration loader)

ROOT = Path(__file__).resolve().parents[1]
MODE = os.environ.get("COURSE_LAB_MODE", "learner")
WORK = "my-notebooks"

# No "Would you like to get notified about official Jupyter news?" pop-up, no update check.
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"

# What the file browser does not list: tooling a learner does not need, and in each mode
# the other mode's lessons.
c.ContentsManager.hide_globs = [
    "__pycache__", "*.pyc", "*.pyo", ".DS_Store", "*~",
    "scripts", "jupytext.toml", "tests", "Makefile", "requirements*.txt",
    "pyproject.toml", "CONTRIBUTING.md", "setup.cfg", "setup.py", "*.egg-info", "build", "dist",
    "_site", "test-artifacts", "*.npz",
    "notebooks" if MODE == "learner" else WORK,
]

# The file browser starts in the lessons' folder, and a new notebook or file made from it
# lands there (for a learner: in my-notebooks/, which git ignores).
c.ContentsManager.preferred_dir = WORK if MODE == "learner" else "notebooks"


def _tracked_files(root: Path) -> set[str] | None:
    """The files git tracks under ``root`` ("a/b.ipynb"), or None without git or a checkout."""
    try:
        listing = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True,
                                 timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {name for name in listing.decode("utf-8", "replace").split("\0") if name}


# Without git (a downloaded archive, a copy of the course) the course's own folders and
# top-level files count as tracked.
COURSE_FOLDERS = ("notebooks", "bnlib", "images", "tests", ".jupyter", ".ci")


def _is_course_file(path: str, tracked: set[str] | None) -> bool:
    if tracked is not None:
        return path in tracked
    first = path.split("/", 1)[0]
    return first in COURSE_FOLDERS or ("/" not in path and (ROOT / path).is_file())


if MODE == "learner":
    from tornado.web import HTTPError

    TRACKED = _tracked_files(ROOT)

    def refuse_course_files(model, path, contents_manager, **kwargs):
        """Reject (with this message in JupyterLab's dialog) a save over a course file."""
        path = path.strip("/")
        if not path.startswith(WORK + "/") and _is_course_file(path, TRACKED):
            raise HTTPError(403, f"{path} belongs to the course (git tracks it), so `make lab` "
                                 f"does not save over it: your copies of the lessons are in "
                                 f"{WORK}/. To change the course itself, use `make author`.")

    c.ContentsManager.pre_save_hook = refuse_course_files
    # The server reads this file once per extension, so the hook is set again with the same
    # code: that is not the "override" jupyter_server warns about.
    warnings.filterwarnings("ignore", message=r"Overriding existing pre_save_hook \(refuse_course")
