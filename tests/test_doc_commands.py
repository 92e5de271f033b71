"""Every ``r1track ...`` command shown in README.md and docs/*.md is a valid command line.

Each command line in a fenced shell block (```bash, ```sh, ```shell, ```console) is parsed with the real
argument parser of ``r1track`` (:func:`r1track.cli.build_parser`: every sub-command's own parser, nested actions
included), and each ``python install_plugins.py ...`` line with the installer's; nothing is executed. A line is
read as the shell would split it: continuation backslashes joined, ``#`` comments dropped, several commands split at
``&&``, ``||``, ``;`` and ``|``, ``VAR=value`` prefixes skipped. A command that does not parse fails the test naming
the file and line and argparse's message.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from r1track.cli import build_parser
from r1track.commands import install as install_command

REPO = Path(__file__).resolve().parents[1]
SHELL_FENCES = ("bash", "sh", "shell", "console")
SEPARATORS = ("&&", "||", ";", "|")


@dataclass(frozen=True)
class Command:
    path: Path
    line: int
    words: tuple[str, ...]

    def where(self) -> str:
        try:
            return f"{self.path.relative_to(REPO)}:{self.line}"
        except ValueError:
            return f"{self.path}:{self.line}"


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(line number of the block's first line, its lines) of every fenced shell block."""
    blocks, current, start = [], None, 0
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if current is None:
            m = re.fullmatch(r"```\s*(\w+)?.*", stripped)
            if m and stripped != "```" and (m.group(1) or "") in SHELL_FENCES:
                current, start = [], n + 1
        elif stripped.startswith("```"):
            blocks.append((start, current))
            current = None
        else:
            current.append(line)
    return blocks


def commands_in(path: Path) -> list[Command]:
    """Every command of every shell block of ``path``, with the line it starts on."""
    out = []
    for start, lines in shell_blocks(path.read_text(encoding="utf-8")):
        i = 0
        while i < len(lines):
            first, text = start + i, lines[i]
            while text.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i]
            i += 1
            text = re.sub(r"^\s*\$\s+", "", text)  # a console prompt
            lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            try:
                tokens = list(lexer)
            except ValueError as exc:
                raise AssertionError(f"{Command(path, first, ()).where()}: cannot split the line: {exc}") from None
            words: list[str] = []
            for tok in tokens + [";"]:
                if tok in SEPARATORS or set(tok) <= set(";&|"):
                    if words:
                        out.append(Command(path, first, tuple(words)))
                    words = []
                elif not words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tok):
                    continue  # VAR=value before the command
                else:
                    words.append(tok)
    return out


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> str:
    """argparse's error message for ``argv`` (empty when it parses; ``--help`` counts as parsing)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
    return ""


def _install_plugins_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="install_plugins.py")
    install_command.add_arguments(parser)
    return parser


def check(commands: list[Command]) -> list[str]:
    """One message per command that does not parse (r1track commands and install_plugins.py)."""
    bad = []
    r1track_parser = build_parser()
    installer = _install_plugins_parser()
    for c in commands:
        words = list(c.words)
        if Path(words[0]).name == "r1track":
            problem = _parse(r1track_parser, words[1:])
        elif Path(words[0]).name.startswith("python") and len(words) > 1 and Path(words[1]).name == "install_plugins.py":
            problem = _parse(installer, words[2:])
        else:
            continue
        if problem:
            bad.append(f"{c.where()}: {shlex.join(words)}\n    {problem}")
    return bad


def test_every_command_in_the_docs_parses():
    commands = [c for path in doc_files() for c in commands_in(path)]
    assert sum(Path(c.words[0]).name == "r1track" for c in commands) >= 20  # the docs do show commands
    bad = check(commands)
    assert not bad, "commands in the docs that r1track does not accept:\n" + "\n".join(bad)


def test_the_checker_finds_a_bad_flag_and_names_file_and_line(tmp_path):
    doc = tmp_path / "probe.md"
    doc.write_text(
        "# probe\n\n```bash\n"
        "r1track eval /data/GOT-10k --split val \\\n  --no-such-flag 3     # a comment\n"
        "FOO=1 r1track demo --frames 10 && r1track report run1 run2\n"
        "r1track track v.mp4 --init 1,2,3,4 | tee log; r1track data build x --max-gapp 3\n"
        "python install_plugins.py --pytracking ~/pt --dry-run\n"
        "python3 install_plugins.py --pytorch ~/pt\n"
        "r1track eval --help\n"
        "```\n\n```python\nr1track eval --bogus\n```\n"
    )
    commands = commands_in(doc)
    assert [(c.line, c.words[:2]) for c in commands] == [
        (4, ("r1track", "eval")), (6, ("r1track", "demo")), (6, ("r1track", "report")), (7, ("r1track", "track")),
        (7, ("tee", "log")), (7, ("r1track", "data")), (8, ("python", "install_plugins.py")),
        (9, ("python3", "install_plugins.py")), (10, ("r1track", "eval"))]
    bad = check(commands)
    assert len(bad) == 3, bad
    assert bad[0].startswith(f"{doc}:4: r1track eval") and "--no-such-flag" in bad[0]
    assert bad[1].startswith(f"{doc}:7: r1track data build") and "--max-gapp" in bad[1]
    assert bad[2].startswith(f"{doc}:9: python3 install_plugins.py") and "--pytorch" in bad[2]


FACT_SHEETS = ("model_families.md", "upstream.md")
"""Pages of upstream facts rather than tasks: they start with prose."""


@pytest.mark.parametrize("path", [p for p in doc_files()[1:] if p.name not in FACT_SHEETS], ids=lambda p: p.name)
def test_every_docs_page_starts_with_the_commands_a_user_types(path):
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# ") and lines[1].startswith("```"), (
        f"{path.relative_to(REPO)}: a task page starts with its title and then a block of the commands a user types")
