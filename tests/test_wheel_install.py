"""``r1track install`` from an installed wheel (no checkout): the wheel carries the plugin files.

Builds r1track's wheel offline (``pip wheel --no-deps --no-build-isolation``), installs it into a fresh
virtual environment outside the checkout (its dependencies come from this test environment through a path
entry, so nothing is downloaded), and runs ``r1track install --pytracking`` there on a PyTracking-shaped
tree, from a working directory outside the checkout. It takes about 4 s on 2 cores (build, venv, install), so it
is marked ``slow``; the check that every install source is bundled stays in the fast suite.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from r1track.install import TARGETS

REPO = Path(__file__).resolve().parents[1]


def _bundle() -> tuple[str, ...]:
    tree = ast.parse((REPO / "setup.py").read_text())
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "BUNDLE"]
    return ast.literal_eval(value)


def test_every_install_source_is_bundled_into_the_wheel():
    bundle = _bundle()
    sources = [f.src for spec in TARGETS.values() for f in spec.files] + [m.src for spec in TARGETS.values() for m in spec.merges]
    for src in sources:
        assert any(src == b or src.startswith(b + "/") for b in bundle), src


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(dist), str(REPO)], check=True, cwd=dist)
    (whl,) = dist.glob("r1track-*.whl")
    return whl


@pytest.mark.slow
def test_install_pytracking_from_an_installed_wheel(tmp_path, wheel):
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True)
    fresh_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                check=True, capture_output=True, text=True).stdout.strip()
    # numpy, pillow ... from this environment; r1track itself only from the wheel (an editable install's
    # finder is a .pth hook, which a plain path entry does not run)
    Path(fresh_site, "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    target = tmp_path / "pytracking"
    (target / "pytracking/tracker/base").mkdir(parents=True)
    (target / "pytracking/tracker/base/basetracker.py").write_text("class BaseTracker: pass\n")
    (target / "pytracking/parameter").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("R1TRACK_HOME", "PYTHONPATH")}
    where = subprocess.run([python, "-c", "import r1track; print(r1track.__file__)"], cwd=tmp_path, env=env,
                           check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(venv)), where
    done = subprocess.run([venv / "bin" / "r1track", "install", "--pytracking", str(target)], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for sub in ("tracker/r1track", "parameter/r1track"):
        ours = sorted(p.relative_to(REPO / "plugins/pytracking" / sub) for p in (REPO / "plugins/pytracking" / sub).rglob("*.py"))
        theirs = sorted(p.relative_to(target / "pytracking" / sub) for p in (target / "pytracking" / sub).rglob("*.py"))
        assert ours == theirs and ours
        for rel in ours:
            assert (target / "pytracking" / sub / rel).read_bytes() == (REPO / "plugins/pytracking" / sub / rel).read_bytes()
