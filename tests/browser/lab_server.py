"""Start and stop a throw-away JupyterLab server on a copy of the course (used by conftest.py).

The server listens on 127.0.0.1 on a free port with a random token, serves a
temporary copy of ``notebooks/`` (and ``images/`` beside it, so the lessons'
``../images/x.png`` links resolve), keeps every Jupyter setting, workspace
and runtime file inside that temporary folder, and sees this checkout's
``bnlib`` first through ``PYTHONPATH``.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# JupyterLab user settings for the test: every cell stays in the page (no
# windowing, so Playwright finds all of them) and no news/update pop-ups.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


@dataclass
class LabServer:
    """A running JupyterLab: its base URL, token, served folder and process."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def notebook_url(self, name: str) -> str:
        """The notebook in a workspace of its own, emptied first: pages never share tabs."""
        workspace = Path(name).stem.replace(".", "-")
        return f"{self.url}lab/workspaces/{workspace}/tree/{name}?reset&token={self.token}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_course(target: Path) -> Path:
    """Copy notebooks/ and images/ under ``target``; return the copied notebooks folder."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    shutil.copytree(REPO / "notebooks", target / "notebooks", ignore=ignore)
    if (REPO / "images").is_dir():
        shutil.copytree(REPO / "images", target / "images", ignore=ignore)
    return target / "notebooks"


def _write_settings(folder: Path) -> None:
    for relative, values in LAB_SETTINGS.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def start(workdir: Path, log: Path, timeout: float = 90.0) -> LabServer:
    """Start JupyterLab on a copy of the course in ``workdir``; wait until it answers."""
    root = copy_course(workdir)
    settings = workdir / "lab-settings"
    _write_settings(settings)
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab-workspaces"),
        "IPYTHONDIR": str(workdir / "ipython"),
    })
    env.pop("MPLBACKEND", None)  # the kernel must use the inline backend, as a learner's does
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               ]
    if os.geteuid() == 0:
        command.append("--allow-root")
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
    """Shut down the kernel(s) of ``notebook`` (a path relative to the served folder)."""
    base = f"{server.url}api/sessions"
    with urllib.request.urlopen(f"{base}?token={server.token}", timeout=10) as answer:
        sessions = json.load(answer)
    for session in sessions:
        if session.get("path") == notebook:
            request = urllib.request.Request(
                f"{base}/{session['id']}?token={server.token}", method="DELETE")
            urllib.request.urlopen(request, timeout=30).close()
