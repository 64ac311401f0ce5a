"""Start and stop a throw-away JupyterLab server on a copy of the course (used by conftest.py).

The server is the one ``make lab`` starts (the command and environment come
from ``tools/course_lab.py``), on a copy: a temporary copy of the
repository's root, where the learner's working copies are made in
``my-notebooks/`` as ``make lab`` makes them (so the lessons'
``../images/x.png`` links resolve as they do in ``make lab``, and saving can
never touch the checkout). It reads the course's JupyterLab settings from the
copy's ``.jupyter/`` in learner mode, listens on 127.0.0.1 on a free port with
a random token, keeps every other Jupyter setting, workspace and runtime file
inside the temporary folder, and sees this checkout's ``bnlib`` first through
``PYTHONPATH``. Its log is kept, so a test can find every request it answered
with 404.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
from tools import course_lab  # noqa: E402

# JupyterLab user settings of the test only: every cell stays in the page (no
# windowing, so Playwright finds all of them). Everything else (no news pop-up,
# what the file browser hides, the start page) comes from the course's
# .jupyter/, as in `make lab`, so the suite checks that configuration.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
# Not copied: environments, caches, build output, version control.
NOT_COPIED = {".venv", "venv", ".git", course_lab.WORK, "test-artifacts", "_site", "__pycache__", ".ipynb_checkpoints",
              ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache", "node_modules"}
# A request the server answered with 404, as jupyter_server logs it:
# "[W ... ServerApp] 404 GET /files/images/x.png?... (user@127.0.0.1) 1.23ms referer=..."
NOT_FOUND = re.compile(r"\] 404 (GET|HEAD|POST|PUT|PATCH|DELETE) ")


@dataclass
class LabServer:
    """A running JupyterLab: its base URL, token, served folder and process."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path
    reported_404s: set[str] = field(default_factory=set)  # log lines a test already reported

    def notebook_url(self, path: str) -> str:
        """The notebook at ``path`` (relative to the served root, e.g. ``notebooks/01_x.ipynb``)
        in a workspace of its own, emptied first: pages never share tabs."""
        return (f"{self.url}lab/workspaces/{workspace(path)}/tree/{path}"
                f"?reset&token={self.token}")

    def not_found(self) -> list[str]:
        """Every line of the server's log so far that records a 404 answer."""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return [line.strip() for line in text.splitlines() if NOT_FOUND.search(line)]


def workspace(path: str) -> str:
    """The workspace name :meth:`LabServer.notebook_url` opens ``path`` in (its file stem)."""
    return Path(path).stem.replace(".", "-")


def requested_by(line: str, path: str) -> bool:
    """Whether a log line concerns the notebook ``path``: the file itself, or a request made
    by its page (jupyter_server logs the referer of every failed request)."""
    return path in line or f"/workspaces/{workspace(path)}/" in line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _not_copied(folder: str, names: list[str]) -> set[str]:
    return {name for name in names if name in NOT_COPIED
            or (Path(folder, name) / "pyvenv.cfg").exists()}  # a virtual environment


def copy_course(target: Path) -> Path:
    """Copy the repository (all but :data:`NOT_COPIED`) to ``target/course``; return that root."""
    root = target / "course"
    shutil.copytree(REPO, root, ignore=_not_copied, symlinks=True)
    return root


def _write_settings(folder: Path) -> None:
    for relative, values in LAB_SETTINGS.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def start(workdir: Path, log: Path, timeout: float = 90.0) -> LabServer:
    """Start JupyterLab on a copy of the course in ``workdir``; wait until it answers."""
    root = copy_course(workdir)
    course_lab.prepare(root, say=lambda _: None)  # my-notebooks/, as make lab makes it
    settings = workdir / "lab-settings"
    _write_settings(settings)
    env = dict(os.environ)
    env.pop("JUPYTER_CONFIG_PATH", None)  # only the course's settings (and no one else's)
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab-workspaces"),
        "IPYTHONDIR": str(workdir / "ipython"),
    })
    env = course_lab.server_env("learner", root, base=env)  # the mode and settings of make lab
    port, token = free_port(), secrets.token_hex(16)
    command = course_lab.server_command("learner", root, extra=[
        "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}"])
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("w")
    process = subprocess.Popen(command, cwd=root, env=env, stdout=handle,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    server = LabServer(url, token, root, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s; see {log}")


def stop(server: LabServer, timeout: float = 20.0) -> None:
    """Ask the server to shut down (it stops its kernels), then kill its process group."""
    process = server.process
    if process.poll() is None:
        try:
            request = urllib.request.Request(
                f"{server.url}api/shutdown?token={server.token}", method="POST")
            urllib.request.urlopen(request, timeout=5).close()
        except OSError:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # kernels are in the server's own session: end any that are left
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def shutdown_kernels(server: LabServer, notebook: str) -> None:
    """Shut down the kernel(s) of ``notebook`` (a path relative to the served root)."""
    base = f"{server.url}api/sessions"
    with urllib.request.urlopen(f"{base}?token={server.token}", timeout=10) as answer:
        sessions = json.load(answer)
    for session in sessions:
        if session.get("path") == notebook:
            request = urllib.request.Request(
                f"{base}/{session['id']}?token={server.token}", method="DELETE")
            urllib.request.urlopen(request, timeout=30).close()
