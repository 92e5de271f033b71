"""Dataset readers and the training-data builder (``r1track data build``).

* :mod:`~r1track.data.readers` / :mod:`~r1track.data.sequences` — GOT-10k, LaSOT, TrackingNet and
  generic folders into one :class:`Sequence` form;
* :mod:`~r1track.data.checks` — usable frames, and what is skipped why;
* :mod:`~r1track.data.profiles`, :mod:`~r1track.data.sampler`, :mod:`~r1track.data.balance` — which
  frames and windows a build uses;
* :mod:`~r1track.data.render` — crops (via :mod:`r1track.crop`) in worker processes;
* :mod:`~r1track.data.writers` — LLaMA-Factory ShareGPT, EasyR1 and verl outputs;
* :mod:`~r1track.data.build` — the atomic, deterministic build.
"""

from .readers import DATASET_KINDS, detect_kind, read_dataset, read_generic, read_got10k, read_lasot, read_trackingnet
from .sequences import DatasetError, Sequence

__all__ = [
    "DATASET_KINDS",
    "DatasetError",
    "Sequence",
    "detect_kind",
    "read_dataset",
    "read_generic",
    "read_got10k",
    "read_lasot",
    "read_trackingnet",
]
