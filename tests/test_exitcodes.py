"""The exit-status table is a public contract: its values and its place in ``r1track --help``."""

import subprocess
import sys

from r1track.cli import main
from r1track.exitcodes import ExitStatus


def test_values_are_the_documented_contract():
    # Written out by hand: scripts test these numbers, so changing one must fail here.
    assert {s.name: int(s) for s in ExitStatus} == {
        "OK": 0, "RUN_FAILED": 1, "USAGE": 2, "SERVER_REFUSED": 3, "INTERRUPTED": 130, "BROKEN_PIPE": 141,
    }


def test_top_level_help_lists_every_status():
    out = subprocess.run([sys.executable, "-m", "r1track", "--help"], capture_output=True, text=True, check=True).stdout
    tail = out[out.index("exit status:"):]
    for status in ExitStatus:
        assert f" {int(status)}  " in tail, status


def test_a_command_error_is_a_usage_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "no-such-dataset"), "--backend", "oracle"]) == ExitStatus.USAGE
    assert "dataset folder not found" in capsys.readouterr().err
