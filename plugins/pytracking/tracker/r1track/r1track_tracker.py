"""The BaseTracker subclass; all work is delegated to :mod:`r1track.pytracking_adapter`."""

from pytracking.tracker.base import BaseTracker

from r1track.pytracking_adapter import PyTrackingSession


class R1Track(BaseTracker):
    """Follows one target with ``r1track.tracker.Tracker``. The HTTP client is made in
    ``initialize`` (never at import: PyTracking spawns workers with ``--threads``). Fallback frames
    are logged with the sequence name and counted; boxes are returned at full precision."""

    multiobj_mode = "parallel"

    def __init__(self, params):
        super().__init__(params)
        self._session = None

    def initialize_features(self):
        """No network features to prepare (PyTracking's VOT runners call this)."""

    def initialize(self, image, info: dict) -> dict:
        self._session = PyTrackingSession(self.params)
        return self._session.initialize(image, info)

    def track(self, image, info: dict = None) -> dict:
        return self._session.track(image, info)
