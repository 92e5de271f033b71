"""Sub-commands of the ``r1track`` command line (one module each, registered in ``r1track.cli``)."""
