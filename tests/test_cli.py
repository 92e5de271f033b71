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
