"""Adapters between r1track and the frameworks that load it, one module per framework: ``pytracking``
(tracker and parameter files), ``easyr1`` and ``verl`` (reward functions; ``reward_kwargs`` reads their config
vocabulary). Plugin files installed into a framework's checkout are one-line re-exports of these modules.

Each module imports nothing from its framework at import time (EasyR1 and PyPI verl both install a
top-level ``verl`` package and cannot share an environment; r1track works in either), and the core
(:mod:`r1track.reward`, :mod:`r1track.tracker`) imports nothing from here.
"""
