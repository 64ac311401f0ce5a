"""Lesson 00's environment check: missing or too old fails, a version that differs only warns."""
import sys
from importlib import metadata

import pytest

from bnlib.course import environment


def write(tmp_path, text):
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def test_pins_keep_only_what_holds_on_this_platform(tmp_path):
    path = write(tmp_path, "numpy==2.0.1\n    # via -r requirements.in\n"
                           "Keras_Nightly==3.0 ; python_version >= '3'\n"
                           "pywinpty==3.1.2 ; sys_platform == 'nonexistent'\n# a==1\n")
    assert environment.pinned_versions(path) == {"numpy": "2.0.1", "keras-nightly": "3.0"}


def test_the_committed_lock_pins_one_tensorflow_here():
    pins = environment.pinned_versions()
    assert ("tensorflow-cpu" in pins) != ("tensorflow" in pins), pins


def _versions(monkeypatch, found):
    def version(name):
        if name not in found:
            raise metadata.PackageNotFoundError(name)
        return found[name]
    monkeypatch.setattr(environment.metadata, "version", version)


def test_everything_at_the_pins_is_said_plainly(tmp_path, monkeypatch, capsys):
    _versions(monkeypatch, {"numpy": "2.0.1", "tensorflow-cpu": "2.21.0"})
    path = write(tmp_path, "numpy==2.0.1\ntensorflow-cpu==2.21.0\n")
    assert environment.check(("numpy", "tensorflow"), path) == []
    out = capsys.readouterr().out
    assert "Everything the course needs is installed, at the pinned versions." in out
    assert "tensorflow-cpu  2.21.0     ok" in out


def test_a_version_that_differs_warns_but_is_no_problem(tmp_path, monkeypatch, capsys):
    _versions(monkeypatch, {"numpy": "2.3.0", "tensorflow": "2.20.0"})  # e.g. a hosted service
    path = write(tmp_path, "numpy==2.0.1\ntensorflow-cpu==2.21.0\n")
    assert environment.check(("numpy", "tensorflow"), path) == []
    out = capsys.readouterr().out
    assert out.count("differs from the pinned") == 2 and "2 version(s) differ" in out


@pytest.mark.parametrize("found, problem", [
    ({}, "numpy is not installed"),
    ({"numpy": "1.26.4"}, "numpy 1.26.4 is older than 2")])
def test_missing_or_too_old_is_a_problem(tmp_path, monkeypatch, capsys, found, problem):
    _versions(monkeypatch, found)
    assert environment.check(("numpy",), write(tmp_path, "numpy==2.0.1\n")) == [problem]
    assert "1 problem(s)" in capsys.readouterr().out


def test_without_requirements_txt_versions_are_not_compared(tmp_path, monkeypatch, capsys):
    _versions(monkeypatch, {"numpy": "2.3.0"})
    assert environment.check(("numpy",), tmp_path / "absent.txt") == []
    assert "not here to compare" in capsys.readouterr().out


@pytest.mark.parametrize("version, supported", [((3, 10), False), ((3, 11), True),
                                                ((3, 13), True), ((3, 14), False)])
def test_python_311_to_313_is_supported(tmp_path, monkeypatch, capsys, version, supported):
    monkeypatch.setattr(sys, "version_info", (*version, 0, "final", 0))
    _versions(monkeypatch, {})
    problems = environment.check((), write(tmp_path, ""))
    out = capsys.readouterr().out
    assert out.startswith(f"Python {version[0]}.{version[1]}: ")
    assert (problems == []) == supported and ("NOT SUPPORTED" in out) != supported
