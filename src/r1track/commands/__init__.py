"""Sub-commands of the ``r1track`` command line (one module each, registered in ``r1track.cli``), and the
error they raise for the user."""


class CommandError(Exception):
    """A user-facing error: printed as ``r1track: error: ...``, no traceback, with exit status ``status``
    (default 2, :attr:`r1track.exitcodes.ExitStatus.USAGE`; :attr:`~r1track.exitcodes.ExitStatus.SERVER_REFUSED`
    for a server that refused the work, :attr:`~r1track.exitcodes.ExitStatus.RUN_FAILED` for output that
    could not be written)."""

    def __init__(self, message: str, *, status: int = 2) -> None:
        super().__init__(message)
        self.exit_status = int(status)  # an ExitStatus (this package's __init__ imports nothing outside it)
