"""Coroutines run to completion in the calling thread: the sync face of the async HTTP transport, without a
hand-off to another thread per call.

:class:`CallerLoop` gives every thread that calls :meth:`CallerLoop.run` a private event loop of its own, kept
between calls (so the connections a client opened on it are reused), and runs the coroutine on it right there:
the thread blocks in its own ``epoll`` wait for the server, as a blocking socket would. Why not one loop in a
background thread for every caller (:class:`r1track.httpclient.BackgroundLoop`): each call then costs two thread
wake-ups (the loop thread woken to start the request, the caller woken with the answer) and the GIL passed twice;
``OpenAIBackend.complete`` ran that way and spent about 150 us more CPU per request than a blocking client, and
more wall time on an idle machine, where a sleeping core must be woken each time (``benchmarks/client_overhead.py``
measures ``Tracker.track``, which takes this path; so do ``r1track track`` and the PyTracking plugin).

From a thread whose own event loop is already running (a sync call made inside async code) a second loop
cannot run there: the coroutine then goes to a :class:`~r1track.httpclient.BackgroundLoop`, as before. Loops are
recreated after a ``fork`` (PyTracking's worker processes); a loop is never shared by two threads.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Awaitable, Callable, TypeVar

from .httpclient import BackgroundLoop

__all__ = ["CallerLoop"]

T = TypeVar("T")


class _ThreadLoop:
    __slots__ = ("loop", "lock", "pid")

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.lock = threading.Lock()  # held while the loop runs (a close from another thread waits or skips)
        self.pid = os.getpid()


class CallerLoop:
    """Runs coroutines in the calling thread on that thread's private event loop (see the module docstring).
    ``name`` names the background thread used for calls made from inside a running event loop."""

    def __init__(self, name: str = "r1track-io") -> None:
        self.background = BackgroundLoop(name)
        self._local = threading.local()
        self._loops: list[_ThreadLoop] = []
        self._lock = threading.Lock()

    def _own(self) -> _ThreadLoop:
        own = getattr(self._local, "loop", None)
        if own is None or own.pid != os.getpid() or own.loop.is_closed():
            own = _ThreadLoop()
            self._local.loop = own
            with self._lock:
                pid = os.getpid()
                self._loops = [t for t in self._loops if t.pid == pid and not t.loop.is_closed()] + [own]
        return own

    def run(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` to completion and return its result (blocking). Interrupting the caller (Ctrl-C)
        cancels the coroutine and lets it clean up before the interruption propagates."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # this thread runs an event loop already: a second one cannot run here
            return self.background.run(coro)
        own = self._own()
        with own.lock:
            task = own.loop.create_task(coro)  # type: ignore[arg-type]
            try:
                return own.loop.run_until_complete(task)
            except BaseException:
                if not task.done():  # interrupted while the loop ran (KeyboardInterrupt): cancel and finish it
                    task.cancel()
                    try:
                        own.loop.run_until_complete(task)
                    except BaseException:
                        pass
                raise

    def loops(self) -> list[asyncio.AbstractEventLoop]:
        """The private loops of this process's threads (and the background loop, when started)."""
        with self._lock:
            found = [t.loop for t in self._loops if t.pid == os.getpid() and not t.loop.is_closed()]
        bg = self.background.loop
        return found + ([bg] if bg is not None else [])

    def close(self, finish: Callable[[asyncio.AbstractEventLoop], Awaitable[Any]] | None = None) -> None:
        """Close every loop not running now (idempotent; a later :meth:`run` makes a new one). ``finish(loop)``:
        a coroutine run on each loop first (closing its connections). The background loop is stopped after
        the same. A loop another thread is running at this moment is left to it. Called from a thread that
        runs an event loop (a garbage-collected backend, an async caller), the work is done in a helper
        thread, where other loops may run."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._close(finish)
            return
        helper = threading.Thread(target=self._close, args=(finish,), name="r1track-close", daemon=True)
        helper.start()
        helper.join(10)

    def _close(self, finish: Callable[[asyncio.AbstractEventLoop], Awaitable[Any]] | None) -> None:
        with self._lock:
            mine = [t for t in self._loops if t.pid == os.getpid()]
            self._loops = [t for t in self._loops if t not in mine]
        for t in mine:
            if t.loop.is_closed() or not t.lock.acquire(blocking=False):
                continue
            try:
                if not t.loop.is_running():
                    if finish is not None:
                        try:
                            t.loop.run_until_complete(finish(t.loop))
                        except Exception:  # closing broken connections
                            pass
                    t.loop.run_until_complete(asyncio.sleep(0))  # let transports finish closing their sockets
                    t.loop.close()
            finally:
                t.lock.release()
        bg = self.background.loop
        if bg is not None and finish is not None:
            try:
                self.background.run(finish(bg))
            except Exception:  # a loop already broken, or called from the loop thread itself (garbage collection)
                pass
        self.background.stop()
