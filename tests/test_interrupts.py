"""r1track.interrupts.ctrl_c_held: processes started inside it never hear Ctrl-C; the parent's own is not lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from procs import on_linux_proc
from r1track.interrupts import ctrl_c_held

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no signal masks on this platform")


def test_a_ctrl_c_during_the_block_arrives_when_it_ends_and_the_mask_is_restored():
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # CI may run us with SIGINT ignored
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with ctrl_c_held():
                assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
                os.kill(os.getpid(), signal.SIGINT)
                done.append("the block ran to its end")
        assert done == ["the block ran to its end"]
    finally:
        signal.signal(signal.SIGINT, handler)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


# A fresh interpreter, so that no multiprocessing resource tracker runs yet: a pool made inside the block starts it,
# and starting it unblocks SIGINT (CPython's resource_tracker.ensure_running) unless ctrl_c_held started it first.
_CHILD = """
import multiprocessing as mp, sys
from r1track.interrupts import ctrl_c_held

def blocked(_=None):
    status = open("/proc/self/status").read()
    return bool(int(status.split("SigBlk:")[1].split()[0], 16) & 2)

if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    with ctrl_c_held():
        pool = ctx.Pool(1)
    in_pool = pool.apply(blocked)
    pool.close()
    pool.join()
    with ctrl_c_held():
        p = ctx.Process(target=blocked)
        p.start()
    in_process = open(f"/proc/{p.pid}/status").read()
    p.join()
    print(in_pool, bool(int(in_process.split("SigBlk:")[1].split()[0], 16) & 2), blocked())
"""


@pytest.mark.skipif(not on_linux_proc(), reason="reads the masks from /proc")
def test_pool_and_process_workers_started_inside_keep_ctrl_c_blocked_and_the_parent_does_not(tmp_path):
    script = tmp_path / "child.py"  # spawn re-imports the main module from its file
    script.write_text(_CHILD)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "False"], out.stdout
