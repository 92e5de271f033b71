"""The layout table (docs/development.md, linked from the README) names every top-level entry of the repository and
every module of the package."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _layout() -> str:
    text = (REPO / "docs" / "development.md").read_text()
    start = text.index("## Layout")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_layout_table_names_every_top_level_entry():
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    table = _layout()
    for top in sorted({path.split("/")[0] for path in tracked}):
        assert f"`{top}" in table, f"the layout table of docs/development.md lacks {top}"


def test_layout_table_names_every_package_module():
    row = next(line for line in _layout().splitlines() if line.startswith("| `src/r1track/` |"))
    named = set(re.findall(r"`(\w+)`", row))
    pkg = REPO / "src" / "r1track"
    modules = {p.stem for p in pkg.glob("*.py") if p.stem not in ("__init__", "__main__")}
    modules |= {p.name for p in pkg.iterdir() if p.is_dir() and (p / "__init__.py").is_file() and p.name not in ("commands", "integrations")}
    assert modules <= named, sorted(modules - named)
    assert (pkg / "commands").is_dir() and "commands/" in row
    assert "`src/r1track/integrations/`" in _layout()
