"""Find Debian's Chromium for Playwright, installing it with apt where that is allowed.

Playwright's own browser download cannot work here, so the suite drives the
system's ``chromium`` package through ``executable_path``. ``make test`` runs
``make browser-deps`` first (which calls :func:`main` below); the pytest
fixture calls :func:`ensure` again, so ``pytest tests/browser`` alone works too.

- ``CHROMIUM`` set: use that file; if it is not an executable file, say so
  (never install anything in its place);
- browser found at Debian's usual paths: use it;
- missing, running as root with apt-get: say what is about to happen, then
  ``apt-get update && apt-get install -y chromium``;
- still missing: with ``CI=true`` the suite fails, otherwise it is skipped,
  and :func:`why_missing` says why and how to enable it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
HOW_TO_ENABLE = ("the browser tests need Debian's chromium package: install it with "
                 "`sudo apt-get install chromium` (or set CHROMIUM=/path/to/chromium), "
                 "then run `make test-browser`")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               # several lessons run at once in separate pages: never slow a hidden one down
               "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
               "--disable-backgrounding-occluded-windows"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def find() -> str | None:
    """The Chromium executable: $CHROMIUM if set, else Debian's usual paths."""
    override = os.environ.get("CHROMIUM")
    if override:
        return override if _executable(override) else None
    return next((path for path in CANDIDATES if _executable(path)), None)


def why_missing() -> str:
    """Why :func:`find` found nothing, and what to do about it."""
    override = os.environ.get("CHROMIUM")
    if override:
        path = Path(override)
        problem = ("there is no such file" if not path.exists()
                   else "it is a directory, not the browser's executable" if path.is_dir()
                   else "that file is not executable")
        return (f"CHROMIUM={override} is set, but {problem}: set CHROMIUM to the path of "
                f"a Chromium executable (for example /usr/bin/chromium), or unset it to use "
                f"Debian's chromium package (`sudo apt-get install chromium`)")
    return f"no Chromium at {' or '.join(CANDIDATES)}: " + HOW_TO_ENABLE


def can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


INSTALL_COMMANDS = (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"])


def announce_install() -> str:
    """What :func:`install` is about to do, printed before it starts."""
    commands = " && ".join(" ".join(c) for c in INSTALL_COMMANDS)
    return (f"The browser tests need Chromium, and there is none at {' or '.join(CANDIDATES)}. "
            f"Running as root, so installing Debian's chromium package now: {commands} "
            f"(apt shows the download size; to use another browser instead, set "
            f"CHROMIUM=/path/to/chromium).")


def install() -> None:
    """``apt-get update && apt-get install -y chromium`` (root only), output to stderr."""
    print(announce_install(), file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in INSTALL_COMMANDS:
        print("+", " ".join(command), file=sys.stderr, flush=True)
        subprocess.run(command, check=True, env=env, stdout=sys.stderr)


def ensure() -> str | None:
    """The browser's path, installing it first where missing and allowed; None if unavailable."""
    path = find()
    if path is None and can_install() and not os.environ.get("CHROMIUM"):
        try:
            install()
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"installing chromium failed: {error}", file=sys.stderr)
        path = find()
    return path


def main() -> int:
    """``make browser-deps``: install where possible; fail only in CI when still missing."""
    path = ensure()
    if path:
        print(f"browser tests will use {path}")
        return 0
    print(("FAILED: " if in_ci() else "skipping the browser tests: ") + why_missing(),
          file=sys.stderr)
    return 1 if in_ci() else 0


if __name__ == "__main__":
    sys.exit(main())
