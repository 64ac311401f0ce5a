"""``make lab``, ``make author`` and ``make restore``: JupyterLab on the learner's own copies.

Usage: python -m tools.course_lab learner|author [JUPYTERLAB OPTIONS...]
       python -m tools.course_lab restore PREFIX
       python -m tools.course_lab prepare

- ``learner`` (``make lab``): the lessons open from ``my-notebooks/``, a
  folder git ignores, holding one working copy of every
  ``notebooks/NN_name.ipynb``. A copy is created from the committed notebook
  when it is missing; a copy the learner has not changed since it was made
  follows the committed notebook (after a ``git pull``); a copy with the
  learner's edits is never overwritten (a note says when the course's
  version has changed). The copies carry no jupytext pairing, so saving one
  writes that one file. ``my-notebooks/`` sits beside ``images/``, so the
  lessons' ``../images/x.png`` links resolve as in ``notebooks/``. The
  server serves the repository's root (``bnlib/`` stays readable), hides
  ``notebooks/`` and refuses, with a message, to save over a file git
  tracks (``.jupyter/jupyter_server_config.py``).
- ``author`` (``make author``): the committed ``notebooks/`` as before, with
  the jupytext pairing (saving a lesson rewrites ``notebooks/NN.ipynb`` and
  ``notebooks/scripts/NN.py``), for contributors.
- ``restore PREFIX`` (``make restore NB=03``): the working copy of each
  lesson whose name starts with PREFIX is made again from the committed
  notebook; a copy with edits is first moved to ``my-notebooks/backups/``.
- ``prepare``: create and update the working copies, start nothing.

The browser suite and ``tests/test_learner_copies.py`` start the server
through :func:`server_command` and :func:`server_env`, so they test what
``make lab`` runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
WORK = "my-notebooks"            # the learner's copies, beside notebooks/ and images/
MANIFEST = ".course-copies.json"  # in WORK: what each copy was made from
BACKUPS = "backups"               # in WORK: copies set aside by restore
LESSON = re.compile(r"^\d\d_[\w-]+\.ipynb$")
MODES = ("learner", "author")
MODE_VARIABLE = "COURSE_LAB_MODE"  # read by .jupyter/jupyter_server_config.py


def lessons(repo: Path = REPO) -> list[Path]:
    """The committed lessons, ``notebooks/NN_name.ipynb``, in order."""
    return sorted(p for p in (repo / "notebooks").glob("*.ipynb") if LESSON.match(p.name))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def working_copy(source: Path) -> bytes:
    """The learner's copy of a committed notebook: the same cells and outputs, no pairing.

    (The committed notebooks name their jupytext pair in their metadata; a copy
    that kept it would write a script beside itself on every save.)
    """
    nb = nbformat.read(source, as_version=4)
    nb.metadata.pop("jupytext", None)
    text = nbformat.writes(nb)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def _read_manifest(work: Path) -> dict:
    try:
        return json.loads((work / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_manifest(work: Path, manifest: dict) -> None:
    (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                 encoding="utf-8")


def _write_copy(source: Path, target: Path, manifest: dict) -> None:
    data = working_copy(source)
    target.write_bytes(data)
    manifest[target.name] = {"source": _sha(source.read_bytes()), "copy": _sha(data)}


def prepare(repo: Path = REPO, say=print) -> dict[str, str]:
    """Create or update the working copies; return what happened to each lesson.

    Each lesson gets one of: "created", "updated" (the learner had not changed
    it, the committed notebook had changed), "unchanged", "kept" (the learner's
    edits; the committed notebook is the same), "kept, course changed" (the
    learner's edits, and the committed notebook has changed since: restore
    would bring in the new version).
    """
    work = repo / WORK
    work.mkdir(exist_ok=True)
    manifest = _read_manifest(work)
    what = {}
    for source in lessons(repo):
        target = work / source.name
        record = manifest.get(source.name, {})
        source_sha = _sha(source.read_bytes())
        if not target.exists():
            _write_copy(source, target, manifest)
            what[source.name] = "created"
        elif _sha(target.read_bytes()) == record.get("copy"):  # as made: follow the course
            if record.get("source") != source_sha:
                _write_copy(source, target, manifest)
                what[source.name] = "updated"
            else:
                what[source.name] = "unchanged"
        elif record.get("source") not in (None, source_sha):
            what[source.name] = "kept, course changed"
        else:
            what[source.name] = "kept"
    _write_manifest(work, manifest)
    created = [n for n, w in what.items() if w == "created"]
    if created:
        say(f"{WORK}/: made your copies of {len(created)} lesson(s) (git ignores this folder; "
            f"`make restore NB=03` resets lesson 03)")
    for name, happened in what.items():
        if happened == "updated":
            say(f"{WORK}/{name}: updated to the course's new version (you had not changed it)")
        elif happened == "kept, course changed":
            say(f"{WORK}/{name}: the course's version changed since your copy was made; "
                f"your copy (with your changes) is kept. `make restore NB={name[:2]}` "
                f"replaces it by the new version and moves yours to {WORK}/{BACKUPS}/")
    return what


def restore(prefix: str, repo: Path = REPO, say=print) -> list[Path]:
    """Make the working copies of the lessons starting with ``prefix`` again; return them."""
    if not prefix:
        sys.exit("say which lesson to restore: make restore NB=03")
    sources = [p for p in lessons(repo) if p.name.startswith(prefix)]
    if not sources:
        sys.exit(f"no lesson in notebooks/ starts with {prefix!r}")
    work = repo / WORK
    work.mkdir(exist_ok=True)
    manifest = _read_manifest(work)
    restored = []
    for source in sources:
        target = work / source.name
        if target.exists() and target.read_bytes() != working_copy(source):
            backups = work / BACKUPS
            backups.mkdir(exist_ok=True)
            backup = backups / f"{source.stem}-{time.strftime('%Y%m%d-%H%M%S')}.ipynb"
            target.replace(backup)
            say(f"{WORK}/{source.name}: your version moved to {backup.relative_to(repo)}")
        _write_copy(source, target, manifest)
        say(f"{WORK}/{source.name}: restored to the course's version")
        restored.append(target)
    _write_manifest(work, manifest)
    return restored


def server_env(mode: str, root: Path = REPO, base: dict | None = None) -> dict[str, str]:
    """The environment JupyterLab runs in: the course's ``.jupyter/`` added to the user's
    configuration, the mode for its config file, no MPLBACKEND for the kernels."""
    env = dict(os.environ if base is None else base)
    course = str(root / ".jupyter")
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [course,
                                                               env.get("JUPYTER_CONFIG_PATH")]))
    env[MODE_VARIABLE] = mode
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.pop("MPLBACKEND", None)  # with MPLBACKEND=Agg inline figures vanish
    return env


def start_page(mode: str) -> str:
    """The notebook JupyterLab opens on, relative to the served root."""
    folder = WORK if mode == "learner" else "notebooks"
    return f"{folder}/00_start_here.ipynb"


def server_command(mode: str, root: Path = REPO, extra: list[str] | None = None) -> list[str]:
    if mode not in MODES:
        raise ValueError(f"mode is one of {MODES}, not {mode!r}")
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
               "--ServerApp.ip=127.0.0.1", f"--LabApp.default_url=/lab/tree/{start_page(mode)}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command + list(extra or [])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in MODES + ("restore", "prepare"):
        sys.exit(__doc__.split("\n\n")[1])
    action, rest = argv[0], argv[1:]
    if action == "restore":
        restore(rest[0] if rest else "")
        return 0
    if action == "prepare" or action == "learner":
        prepare()
    if action == "prepare":
        return 0
    if action == "author":
        print("author mode: notebooks/ with the jupytext pairing; saving a lesson rewrites "
              "notebooks/NN_name.ipynb and notebooks/scripts/NN_name.py")
    command, env = server_command(action, REPO, rest), server_env(action, REPO)
    if os.name == "posix":
        os.execve(command[0], command, env)  # Ctrl+C goes straight to JupyterLab
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
