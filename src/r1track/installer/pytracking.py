"""The PyTracking installer: the tracker (``pytracking/tracker/r1track``) and its parameter files
(``pytracking/parameter/r1track``), and a note when ``pytracking/evaluation/local.py`` -- which r1track never
writes -- is still missing."""

from __future__ import annotations

from pathlib import Path

from .plan import FileMap, TargetSpec

__all__ = ["SPEC"]


def _pytracking_notes(target: Path) -> list[str]:
    if (target / "pytracking" / "evaluation" / "local.py").is_file():
        return []
    return [
        "pytracking/evaluation/local.py is missing (PyTracking creates a template on first run and stops). "
        "r1track needs nothing special in it; add at least, with your own paths:\n"
        "    from pytracking.evaluation.environment import EnvSettings\n\n"
        "    def local_env_settings():\n"
        "        settings = EnvSettings()\n"
        "        settings.results_path = '/path/to/pytracking/results'\n"
        "        settings.result_plot_path = '/path/to/pytracking/result_plots'\n"
        "        settings.got10k_path = '/path/to/GOT-10k'\n"
        "        settings.lasot_path = '/path/to/LaSOT'\n"
        "        settings.trackingnet_path = '/path/to/TrackingNet'\n"
        "        settings.otb_path = '/path/to/OTB100'\n"
        "        return settings\n"
        "(r1track never writes local.py.)"
    ]


SPEC = TargetSpec(
    name="pytracking",
    title="PyTracking",
    markers=("pytracking/tracker/base/basetracker.py",),
    files=(
        FileMap("plugins/pytracking/tracker/r1track", "pytracking/tracker/r1track"),
        FileMap("plugins/pytracking/parameter/r1track", "pytracking/parameter/r1track"),
    ),
    notes=_pytracking_notes,
)
