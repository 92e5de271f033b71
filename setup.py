"""Build hook: the wheel carries the plugin files ``r1track install`` copies into upstream checkouts.

The plugin sources stay where a checkout uses them (``plugins/``, ``examples/``, ``datasets_info/``); at build
time they are copied, same relative paths, into the package as ``r1track/_bundle/``, which
``r1track.install.repo_root`` finds in an installed wheel. Editable installs skip the copy (the checkout
itself is the source). Everything else is in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent

BUNDLE = ("plugins", "examples", "datasets_info/dataset_info.json")
"""Paths (relative to the checkout) copied into ``r1track/_bundle``: every source ``r1track.install.TARGETS``
names lies under one of them (a test checks)."""


class BuildPyWithBundle(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest_root = Path(self.build_lib) / "r1track" / "_bundle"
        for rel in BUNDLE:
            src, dest = ROOT / rel, dest_root / rel
            if src.is_dir():
                shutil.copytree(src, dest, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store"))
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)


setup(cmdclass={"build_py": BuildPyWithBundle})
