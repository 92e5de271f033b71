"""CallerLoop: coroutines run to completion in the calling thread (the sync face of the HTTP client)."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from r1track.callerloop import CallerLoop


async def where() -> tuple[int, asyncio.AbstractEventLoop]:
    await asyncio.sleep(0)
    return threading.get_ident(), asyncio.get_running_loop()


def test_runs_in_the_calling_thread_on_one_loop_per_thread():
    runner = CallerLoop()
    ident, loop = runner.run(where())
    assert ident == threading.get_ident()
    assert runner.run(where())[1] is loop  # kept between calls: a client's connections on it are reused
    other: list = []
    t = threading.Thread(target=lambda: other.append(runner.run(where())))
    t.start()
    t.join()
    assert other[0][0] == t.ident and other[0][1] is not loop
    assert not loop.is_running()
    runner.close()
    assert loop.is_closed()
    assert runner.run(where())[0] == threading.get_ident()  # a new loop after close
    runner.close()


def test_errors_propagate_and_the_loop_stays_usable():
    runner = CallerLoop()

    async def boom():
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        runner.run(boom())
    assert runner.run(where())[0] == threading.get_ident()
    runner.close()


def test_interrupting_the_caller_cancels_the_coroutine_and_lets_it_clean_up():
    runner = CallerLoop()
    cleaned = []

    async def slow():
        asyncio.get_running_loop().call_later(0.05, _interrupt)
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append(True)

    with pytest.raises(KeyboardInterrupt):
        runner.run(slow())
    assert cleaned == [True]
    assert runner.run(where())[0] == threading.get_ident()  # Ctrl-C left the loop usable
    runner.close()


def _interrupt() -> None:
    raise KeyboardInterrupt  # what Ctrl-C does to a loop running in the main thread


def test_from_inside_a_running_loop_the_background_thread_runs_it():
    runner = CallerLoop()

    async def outer():
        return runner.run(where())  # a sync call made inside async code: no second loop in this thread

    ident, _ = asyncio.run(outer())
    assert ident != threading.get_ident()
    runner.close()  # stops the background thread too
    assert runner.background.loop is None


def test_close_from_a_running_loop_happens_in_a_helper_thread():
    runner = CallerLoop()
    _, loop = runner.run(where())
    finished = []

    async def finish(which):
        finished.append(which)

    async def outer():
        runner.close(finish)  # e.g. a backend garbage-collected while an event loop runs

    asyncio.run(outer())
    assert finished == [loop] and loop.is_closed()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_gets_its_own_loop():
    runner = CallerLoop()
    parent_loop = runner.run(where())[1]
    pid = os.fork()
    if pid == 0:  # the child: the parent's loop object is not reused
        try:
            ok = runner.run(where())[1] is not parent_loop
        finally:
            os._exit(0 if ok else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert runner.run(where())[1] is parent_loop
    runner.close()
