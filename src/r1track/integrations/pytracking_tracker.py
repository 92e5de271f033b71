"""The PyTracking tracker class (imports PyTracking; loaded by :func:`r1track.integrations.pytracking.get_tracker_class`).

PyTracking keeps the class on its evaluation ``Tracker`` object and, with ``--threads N``, pickles that object
into spawned workers: the class must live at module level to be picklable by reference.
"""

from __future__ import annotations

from typing import Any

from pytracking.tracker.base import BaseTracker

from .pytracking_session import PyTrackingSession

__all__ = ["R1Track"]


class R1Track(BaseTracker):
    """Follows one target with ``r1track.tracker.Tracker``. The HTTP client is made in ``initialize`` (never at
    import: PyTracking spawns workers with ``--threads``). Fallback frames are logged with the sequence name and
    counted; boxes are full precision. The work is a :class:`PyTrackingSession`."""

    multiobj_mode = "parallel"

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self._session: PyTrackingSession | None = None

    def initialize_features(self) -> None:
        """No network features to prepare (PyTracking's VOT runners call this)."""

    def initialize(self, image: Any, info: dict) -> dict:
        self._session = PyTrackingSession(self.params)
        return self._session.initialize(image, info)

    def track(self, image: Any, info: dict | None = None) -> dict:
        if self._session is None:
            raise RuntimeError("r1track: track() before initialize()")
        return self._session.track(image, info)
