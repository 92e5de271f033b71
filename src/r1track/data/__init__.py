"""Dataset readers and (later) the training-data builder. See ``r1track.data.readers``."""

from .readers import read_generic, read_got10k
from .sequences import DatasetError, Sequence

__all__ = ["DatasetError", "Sequence", "read_generic", "read_got10k"]
