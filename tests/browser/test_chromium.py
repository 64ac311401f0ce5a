"""What ``make browser-deps`` (tests/browser/chromium.py) says and does when Chromium is not there.

These run without a browser: the paths are temporary files, and the one
test of the root-with-apt case replaces ``subprocess.run`` to record the
commands instead of running apt.
"""
from __future__ import annotations

import subprocess

import pytest

import chromium


@pytest.fixture
def no_browser(monkeypatch, tmp_path):
    """No Chromium at Debian's paths, CHROMIUM and CI unset, and no apt run by accident."""
    monkeypatch.setattr(chromium, "CANDIDATES", (str(tmp_path / "chromium"),))
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.delenv("CI", raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError(f"ran {args[0]}")
    monkeypatch.setattr(subprocess, "run", refuse)
    return tmp_path


def test_a_chromium_path_that_does_not_exist_is_named(no_browser, monkeypatch, capsys):
    monkeypatch.setattr(chromium, "can_install", lambda: True)  # even as root: install nothing
    monkeypatch.setenv("CHROMIUM", "/nonexistent")
    assert chromium.ensure() is None
    assert chromium.main() == 0
    err = capsys.readouterr().err
    assert "CHROMIUM=/nonexistent is set, but there is no such file" in err
    assert err.startswith("skipping the browser tests: ")
    monkeypatch.setenv("CI", "true")
    assert chromium.main() == 1
    assert capsys.readouterr().err.startswith("FAILED: CHROMIUM=/nonexistent is set")


@pytest.mark.parametrize("kind, says", [("directory", "it is a directory"),
                                        ("plain file", "that file is not executable")])
def test_a_chromium_path_that_is_not_a_program_is_named(no_browser, monkeypatch, kind, says):
    path = no_browser / "not-chromium"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_text("")
    monkeypatch.setenv("CHROMIUM", str(path))
    assert chromium.find() is None
    assert f"CHROMIUM={path} is set, but {says}" in chromium.why_missing()


def test_a_chromium_path_that_is_a_program_is_used(no_browser, monkeypatch):
    path = no_browser / "my-chromium"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    monkeypatch.setenv("CHROMIUM", str(path))
    assert chromium.find() == str(path)


def test_without_chromium_and_not_root_the_hint_says_how_to_install(no_browser, monkeypatch):
    monkeypatch.setattr(chromium, "can_install", lambda: False)
    assert chromium.ensure() is None
    message = chromium.why_missing()
    assert f"no Chromium at {no_browser / 'chromium'}" in message
    assert "sudo apt-get install chromium" in message


def test_as_root_the_install_is_announced_before_apt_runs(no_browser, monkeypatch, capsys):
    monkeypatch.setattr(chromium, "can_install", lambda: True)
    events = []

    def record(command, **kwargs):
        events.append(("ran", command, capsys.readouterr().err))
        return subprocess.CompletedProcess(command, 0)
    monkeypatch.setattr(subprocess, "run", record)
    assert chromium.ensure() is None  # the fake apt installed nothing
    (_, first, said_before), (_, second, _) = events
    assert first == ["apt-get", "update", "-q"]
    assert second == ["apt-get", "install", "-y", "-q", "chromium"]
    assert "Running as root, so installing Debian's chromium package now: " in said_before
    assert "apt-get update -q && apt-get install -y -q chromium" in said_before
