import subprocess
import sys

from r1track.cli import main
from r1track.prompts import PROMPTS, render_text


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "prompts" in out and "usage: r1track" in out


def test_prompts_show_prints_every_version_with_examples(capsys):
    assert main(["prompts", "show"]) == 0
    out = capsys.readouterr().out
    for name in PROMPTS:
        assert f"=== {name}" in out
    assert render_text("r1track-v1", think=True, boxes_xyxy_model=[(124, 130, 212, 206)]) in out


def test_unknown_prompt_version_is_a_clean_error(capsys):
    assert main(["prompts", "show", "r1track-v9"]) == 2
    assert "unknown prompt version" in capsys.readouterr().err


def test_console_script_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "r1track", "--help"], capture_output=True, text=True, check=True)
    assert "r1track" in out.stdout


def test_cli_import_stays_light():
    code = "import sys, r1track.cli; r1track.cli.build_parser(); bad = [m for m in ('torch','transformers','vllm','verl','llamafactory','httpx','pyarrow') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- one spelling per flag across sub-commands --------------------------------------------------------------------

SYNONYMS = {  # spellings that would say the same thing as an existing flag in other words
    "--out": ("--output", "--output-dir", "--outdir", "--out-dir", "--dest"),
    "--no-progress": ("--quiet", "--silent", "--no-bar", "--no-progress-bar"),
    "--concurrency": ("--jobs", "--parallel"),
    "--server": ("--url", "--base-url", "--server-url"),
}


def _commands(parser, path=()):
    """(command path, parser) of every sub-command, nested ones (``data build``) included."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def _visible_flags(parser):
    """dest -> the option strings shown in --help (hidden aliases left out)."""
    import argparse

    flags: dict[str, set] = {}
    for action in parser._actions:
        if action.option_strings and action.help is not argparse.SUPPRESS and action.dest != "help":
            flags.setdefault(action.dest, set()).update(action.option_strings)
    return flags


def test_common_flags_have_one_spelling_in_every_subcommand():
    from r1track.cli import build_parser

    seen: dict[str, dict[tuple, frozenset]] = {}
    for path, sub in _commands(build_parser()):
        for dest, strings in _visible_flags(sub).items():
            seen.setdefault(dest, {})[path] = frozenset(strings)
            for canonical, others in SYNONYMS.items():
                clash = strings & set(others)
                assert not clash, f"'r1track {' '.join(path)}' spells {canonical} as {sorted(clash)}"
    shared = {dest: by for dest, by in seen.items() if len(by) > 1}
    assert {"out", "no_progress", "model", "seed", "workers"} <= set(shared)  # the check has something to compare
    for dest, by in shared.items():
        assert len(set(by.values())) == 1, f"{dest} is spelled differently: " + "; ".join(
            f"r1track {' '.join(p)}: {', '.join(sorted(s))}" for p, s in sorted(by.items()))
    out = seen["out"]
    assert all("-o" in s for s in out.values()) and {("data", "build"), ("eval",), ("track",)} <= set(out)


def test_data_build_takes_o_and_the_old_quiet_spelling(tmp_path):
    from r1track.cli import build_parser

    args = build_parser().parse_args(["data", "build", "x", "-o", str(tmp_path), "--quiet"])
    assert args.out == str(tmp_path) and args.no_progress is True
    assert build_parser().parse_args(["data", "build", "x", "--no-progress"]).no_progress is True
