"""A learner's saves in ``make lab`` never dirty a tracked file; ``make author`` still pairs.

The course is committed into a fresh git repository in a temporary folder;
``python -m tools.course_lab learner`` (what ``make lab`` runs) starts
JupyterLab on it, and the test saves through JupyterLab's contents API as
the browser does: saving a lesson writes the learner's copy in
``my-notebooks/`` and ``git status`` stays clean; a save over a tracked file
is refused. In author mode (``make author``) the same save rewrites the
committed notebook and its paired script, which ``git status`` shows (so the
check can fail). The working-copy rules (created, followed, kept, restored)
are tested on the same kind of temporary repository without a server.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
from tools import course_lab  # noqa: E402

LESSON = "03_batchnorm_forward.ipynb"
GIT = shutil.which("git")
# Tests that start kernels or servers share one xdist worker, so they never start at once.
pytestmark = [pytest.mark.xdist_group("kernels"), pytest.mark.skipif(GIT is None, reason="needs git")]


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout


def _commit_course(target: Path) -> Path:
    """The files git tracks in this checkout, as they are now, committed in a new repository."""
    root = target / "course"
    names = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    for name in (".gitignore", ".jupyter/jupyter_server_config.py", "tools/__init__.py",
                 "tools/course_lab.py"):
        shutil.copy2(REPO / name, root / name)  # this branch's versions, even uncommitted
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=test", "-c", "user.email=test@example.invalid",
         "commit", "-q", "-m", "the course")
    return root


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return _commit_course(tmp_path_factory.mktemp("learner"))


def _status(root: Path) -> list[str]:
    return _git(root, "status", "--porcelain", "--untracked-files=all").splitlines()


# --- the working copies, without a server ---------------------------------------------


@pytest.fixture
def small_course(tmp_path):
    """Two lessons and the images, laid out as in the repository."""
    for name in ("00_start_here.ipynb", LESSON):
        (tmp_path / "notebooks").mkdir(exist_ok=True)
        shutil.copy2(REPO / "notebooks" / name, tmp_path / "notebooks" / name)
    shutil.copytree(REPO / "images", tmp_path / "images")
    return tmp_path


def _edit(path: Path, text: str) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(text))
    nbformat.write(nb, path)


def test_copies_have_the_lessons_cells_and_outputs_without_pairing(small_course):
    assert course_lab.prepare(small_course, say=lambda _: None) == {
        "00_start_here.ipynb": "created", LESSON: "created"}
    committed = nbformat.read(small_course / "notebooks" / LESSON, as_version=4)
    copy = nbformat.read(small_course / course_lab.WORK / LESSON, as_version=4)
    assert committed.metadata["jupytext"]["formats"] == "ipynb,scripts//py:percent"
    assert "jupytext" not in copy.metadata
    assert copy.cells == committed.cells  # sources and outputs
    # the diagrams resolve from the copy as from the committed notebook
    for cell in copy.cells:
        for name in re.findall(r"\(\.\./images/([\w.-]+)\)", cell.source):
            assert (small_course / course_lab.WORK / ".." / "images" / name).is_file()


def test_edits_are_kept_and_untouched_copies_follow_the_course(small_course):
    quiet = lambda _: None  # noqa: E731
    course_lab.prepare(small_course, say=quiet)
    work = small_course / course_lab.WORK
    _edit(work / LESSON, "my own note")
    assert course_lab.prepare(small_course, say=quiet)[LESSON] == "kept"
    # the course changes both lessons (a git pull): the edited copy is kept, the other follows
    for name in ("00_start_here.ipynb", LESSON):
        _edit(small_course / "notebooks" / name, "new in the course")
    messages = []
    what = course_lab.prepare(small_course, say=messages.append)
    assert what == {"00_start_here.ipynb": "updated", LESSON: "kept, course changed"}
    assert "new in the course" in (work / "00_start_here.ipynb").read_text()
    kept = (work / LESSON).read_text()
    assert "my own note" in kept and "new in the course" not in kept
    assert any("make restore NB=03" in m for m in messages), messages
    assert course_lab.prepare(small_course, say=quiet)["00_start_here.ipynb"] == "unchanged"


def test_restore_sets_the_edited_copy_aside(small_course):
    quiet = lambda _: None  # noqa: E731
    course_lab.prepare(small_course, say=quiet)
    work = small_course / course_lab.WORK
    _edit(work / LESSON, "my own note")
    (restored,) = course_lab.restore("03", small_course, say=quiet)
    assert restored.read_bytes() == course_lab.working_copy(small_course / "notebooks" / LESSON)
    (backup,) = (work / course_lab.BACKUPS).glob("03_*.ipynb")
    assert "my own note" in backup.read_text()
    assert course_lab.prepare(small_course, say=quiet)[LESSON] == "unchanged"
    with pytest.raises(SystemExit):
        course_lab.restore("99", small_course, say=quiet)


# --- saving through a running JupyterLab ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, root: Path, mode: str, workdir: Path):
        self.token, port = secrets.token_hex(8), _free_port()
        self.url = f"http://127.0.0.1:{port}/"
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(workdir / "config"),
                   JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
                   JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"))
        self.log = (workdir / f"{mode}.log").open("w")
        command = [sys.executable, "-m", "tools.course_lab", mode,
                   "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
                   f"--IdentityProvider.token={self.token}"]
        self.process = subprocess.Popen(command, cwd=root, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"JupyterLab exited; see {self.log.name}"
            try:
                if self.request("GET", "api/status")[0] == 200:
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"JupyterLab did not start; see {self.log.name}")

    def request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}?token={self.token}", data=data,
                                         method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def save_notebook(self, path: str, note: str):
        """Open ``path`` as JupyterLab does, add a Markdown cell, save it back."""
        status, model = self.request("GET", f"api/contents/{path}")
        assert status == 200, (path, status, model)
        model["content"]["cells"].insert(0, nbformat.v4.new_markdown_cell(note))
        return self.request("PUT", f"api/contents/{path}",
                            {"type": "notebook", "format": "json", "content": model["content"]})

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def server(course, tmp_path):
    started = []

    def start(mode):
        started.append(Server(course, mode, tmp_path))
        return started[-1]
    yield start
    for running in started:
        running.stop()


def test_learner_saves_leave_git_status_clean(course, server):
    lab = server("learner")
    assert _status(course) == []
    status, model = lab.request("GET", "api/contents")
    assert status == 200
    shown = {item["name"] for item in model["content"]}
    assert course_lab.WORK in shown and "notebooks" not in shown, shown
    status, _ = lab.save_notebook(f"{course_lab.WORK}/{LESSON}", "a learner's note")
    assert status == 200
    assert "a learner's note" in (course / course_lab.WORK / LESSON).read_text()
    assert not (course / course_lab.WORK / "scripts").exists(), "the copy is still paired"
    status, _ = lab.request("POST", f"api/contents/{course_lab.WORK}", {"type": "notebook"})
    assert status == 201  # a new notebook made in the lessons' folder
    assert _status(course) == []
    # the committed notebook, reached by its path (e.g. from a link in the README): refused
    before = (course / "notebooks" / LESSON).read_bytes()
    status, answer = lab.save_notebook(f"notebooks/{LESSON}", "a learner's note")
    assert status in (403, 500) and "my-notebooks/" in answer["message"], (status, answer)
    status, answer = lab.request("PUT", "api/contents/README.md",
                                 {"type": "file", "format": "text", "content": "changed"})
    assert status == 403 and "make author" in answer["message"], (status, answer)
    assert (course / "notebooks" / LESSON).read_bytes() == before
    assert _status(course) == []


def test_author_saves_rewrite_the_notebook_and_its_script(course, server):
    lab = server("author")
    status, model = lab.request("GET", "api/contents")
    assert "notebooks" in {item["name"] for item in model["content"]}
    try:
        status, _ = lab.save_notebook(f"notebooks/{LESSON}", "an author's note")
        assert status == 200
        changed = {line[3:] for line in _status(course)}
        script = f"notebooks/scripts/{LESSON.replace('.ipynb', '.py')}"
        assert changed == {f"notebooks/{LESSON}", script}, changed
        assert "an author's note" in (course / script).read_text()
    finally:
        _git(course, "checkout", "--", "notebooks")
