"""Hypothesis example budgets: one number per test, scaled by the active profile.

``tests/conftest.py`` registers two profiles: ``fast`` (the default, so ``pytest -m "not slow"`` stays near a
minute on two cores) and ``heavy`` (``HYPOTHESIS_PROFILE=heavy`` or ``pytest --hypothesis-profile=heavy``;
``.ci/run`` selects it). A test states its heavy budget with :func:`examples`; the fast profile runs a
twentieth of it (at least 10 examples).
"""

from __future__ import annotations

from hypothesis import settings

HEAVY_MAX_EXAMPLES = 1000
FAST_MAX_EXAMPLES = 50


def examples(heavy: int) -> int:
    """``heavy`` under the heavy profile; scaled down by the active profile's ``max_examples`` otherwise."""
    scale = settings().max_examples / HEAVY_MAX_EXAMPLES
    return max(10, min(heavy, round(heavy * scale)))


def frame_budget(fast: int) -> int | None:
    """Frames per real sequence for tests that track whole sequences: every frame (None) under the heavy
    profile, the first ``fast`` otherwise (every scene is still covered; FaceOcc1 alone has 894 frames)."""
    return None if settings().max_examples >= HEAVY_MAX_EXAMPLES else fast
