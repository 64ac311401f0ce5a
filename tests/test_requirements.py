"""The lock installs everywhere the README says: each platform and Python resolves to exactly
the pinned versions from wheels alone, and requirements.txt is what `make lock` makes from
requirements.in. uv resolves for a platform without being on it (the machines are not here);
it reads the package index, as any install does."""
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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


COMBINATIONS = [(platform, python) for platform in PLATFORMS for python in PYTHONS]


@pytest.fixture(scope="module")
def remade(tmp_path_factory) -> tuple[subprocess.CompletedProcess, str]:
    """requirements.txt made again from requirements.in, as `make lock` does (this also reads
    every platform's part of the index into uv's cache)."""
    folder = tmp_path_factory.mktemp("lock")
    shutil.copy(ROOT / "requirements.in", folder)
    shutil.copy(ROOT / "requirements.txt", folder)   # uv keeps the versions it finds there
    result = uv("requirements.in", "--universal", "--python-version", "3.11",
                "-o", "requirements.txt", cwd=folder)
    return result, (folder / "requirements.txt").read_text()


@pytest.fixture(scope="module")
def resolutions(remade, tmp_path_factory) -> dict:
    """Every platform and Python resolved at once, from the index data the universal
    resolution put in uv's cache (--offline: no second trip to the index); one that finds
    the cache short asks the index itself."""
    folder = tmp_path_factory.mktemp("resolved")

    def resolve(combination, *offline):
        platform, python = combination
        out = folder / f"{PLATFORMS[platform]}-{python}.txt"
        result = uv("requirements.txt", "--python-platform", PLATFORMS[platform],
                    "--python-version", python, "--only-binary", ":all:", "-o", str(out),
                    *offline)
        if result.returncode != 0 and offline:
            return resolve(combination)
        return result, out.read_text() if result.returncode == 0 else ""

    with ThreadPoolExecutor(max_workers=len(COMBINATIONS)) as pool:
        return dict(zip(COMBINATIONS, pool.map(lambda c: resolve(c, "--offline"), COMBINATIONS)))


@pytest.mark.parametrize("platform, python", COMBINATIONS,
                         ids=[f"{platform}-{python}" for platform, python in COMBINATIONS])
def test_the_lock_resolves_on_each_platform_from_wheels(resolutions, platform, python):
    result, text = resolutions[platform, python]
    assert result.returncode == 0, result.stderr
    resolved, locked = pins(text), pins((ROOT / "requirements.txt").read_text())
    assert resolved <= locked, f"not in the lock: {sorted(resolved - locked)}"
    tensorflow = {name for name, _ in resolved} & {"tensorflow", "tensorflow-cpu"}
    assert len(tensorflow) == 1, tensorflow


def test_the_lock_is_made_from_requirements_in(remade):
    result, text = remade
    assert result.returncode == 0, result.stderr
    committed = (ROOT / "requirements.txt").read_text()
    assert pins(text) == pins(committed), "run `make lock`"
    with_markers = lambda lock: {l.split(" #")[0] for l in lock.splitlines() if ";" in l}
    assert with_markers(text) == with_markers(committed), "run `make lock`"


def test_every_pin_of_requirements_in_is_kept_in_the_lock():
    wanted, locked = (pins((ROOT / f).read_text()) for f in ("requirements.in", "requirements.txt"))
    assert wanted <= locked, sorted(wanted - locked)
