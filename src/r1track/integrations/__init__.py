"""Entry points that upstream trainers load by name (``pkg://r1track.integrations.<name>``).

Each module is thin: it adapts one trainer's calling convention to :mod:`r1track.reward` and imports nothing
from the trainer itself (EasyR1 and PyPI verl both install a top-level ``verl`` package and cannot share an
environment; r1track works in either).
"""
