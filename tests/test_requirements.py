"""The lock installs everywhere the README says: each platform and Python resolves to exactly
the pinned versions from wheels alone, and requirements.txt is what `make lock` makes from
requirements.in. uv resolves for a platform without being on it (the machines are not here);
it reads the package index, as any install does."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")
PLATFORMS = {"Linux x86-64": "x86_64-unknown-linux-gnu", "Linux aarch64": "aarch64-unknown-linux-gnu",
             "macOS arm64": "aarch64-apple-darwin", "Windows x86-64": "x86_64-pc-windows-msvc"}
PYTHONS = ("3.11", "3.12", "3.13")
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", re.M)


def pins(text: str) -> set[tuple[str, str]]:
    return {(name.lower().replace("_", "-"), version) for name, version in PIN.findall(text)}


def uv(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(UV), "pip", "compile", *args, "--quiet", "--no-header",
                           "--no-annotate"], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", PLATFORMS, ids=list(PLATFORMS))
def test_the_lock_resolves_on_each_platform_from_wheels(platform, python, tmp_path):
    out = tmp_path / "resolved.txt"
    result = uv("requirements.txt", "--python-platform", PLATFORMS[platform], "--python-version",
                python, "--only-binary", ":all:", "-o", str(out))
    assert result.returncode == 0, result.stderr
    resolved, locked = pins(out.read_text()), pins((ROOT / "requirements.txt").read_text())
    assert resolved <= locked, f"not in the lock: {sorted(resolved - locked)}"
    tensorflow = {name for name, _ in resolved if name.startswith("tensorflow")} & {
        "tensorflow", "tensorflow-cpu"}
    assert len(tensorflow) == 1, tensorflow


def test_the_lock_is_made_from_requirements_in(tmp_path):
    shutil.copy(ROOT / "requirements.in", tmp_path)
    shutil.copy(ROOT / "requirements.txt", tmp_path)   # uv keeps the versions it finds there
    result = uv("requirements.in", "--universal", "--python-version", "3.11",
                "-o", "requirements.txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    remade, committed = ((p / "requirements.txt").read_text() for p in (tmp_path, ROOT))
    assert pins(remade) == pins(committed), "run `make lock`"
    with_markers = lambda text: {l.split(" #")[0] for l in text.splitlines() if ";" in l}
    assert with_markers(remade) == with_markers(committed), "run `make lock`"


def test_every_pin_of_requirements_in_is_kept_in_the_lock():
    wanted, locked = (pins((ROOT / f).read_text()) for f in ("requirements.in", "requirements.txt"))
    assert wanted <= locked, sorted(wanted - locked)
