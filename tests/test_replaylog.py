"""Replay logs written in batches from the event loop (ReplayWriter): the same files as one append per frame, in
order, no file held open, a removed log never comes back, a write error reaches its own sequence only."""

from __future__ import annotations

import asyncio
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from r1track.backends import BackendError
from r1track.boxes import BoxXYWH, BoxXYXY
from r1track.evalfolder import ReplayLog, ReplayWriter
from r1track.evalrun import OutputUnwritable
from r1track.frame_outcome import FrameTiming, Status, TrackResult


def result(i: int, status: Status = Status.OK) -> TrackResult:
    reply = f"[{i},{i},{i + 9},{i + 9}]" if status == Status.OK else None
    return TrackResult(frame_index=i, box_xywh_orig=BoxXYWH(i, i, 9, 9), status=status,
                       detail="timeout: no reply" if status == Status.BACKEND_ERROR else "", reply=reply,
                       box_xyxy_model=None, search_window_xyxy_orig=BoxXYXY(0, 0, 1, 1), search_factor=4.0,
                       timing=FrameTiming(0.01, 0.02, 0.0), attempts=1, faults={"timeout": 1} if reply is None else {})


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self):
        super().__init__(max_workers=1)
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


def test_batched_logs_equal_one_append_per_frame_and_resume(tmp_path):
    sequences, frames = 40, 12

    async def run() -> int:
        with CountingExecutor() as ex:
            writer = ReplayWriter(ex)
            logs = [ReplayLog(tmp_path / "batched" / f"s{k}.jsonl", writer) for k in range(sequences)]

            async def one(log: ReplayLog, k: int) -> None:
                for i in range(1, frames + 1):
                    log.append(result(i, Status.BACKEND_ERROR if (i + k) % 5 == 0 else Status.OK))
                    await asyncio.sleep(0)  # other sequences run in between, as in a real run

            await asyncio.gather(*(one(log, k) for k, log in enumerate(logs)))
            await writer.settle()
            return ex.jobs

    jobs = asyncio.run(run())
    assert jobs < sequences * frames / 4  # batched: far fewer thread hand-offs than lines
    for k in range(sequences):
        plain = ReplayLog(tmp_path / "plain" / f"s{k}.jsonl")
        for i in range(1, frames + 1):
            plain.append(result(i, Status.BACKEND_ERROR if (i + k) % 5 == 0 else Status.OK))
        batched = tmp_path / "batched" / f"s{k}.jsonl"
        assert batched.read_bytes() == plain.path.read_bytes()
        resumed = ReplayLog(batched)  # what a rerun reads
        assert [e["i"] for e in resumed.entries] == list(range(1, frames + 1))
        assert isinstance(ReplayLog.reply_of(resumed.entries[4 - k % 5]), BackendError)


def test_a_removed_log_is_not_written_again_by_a_batch_in_flight(tmp_path):
    async def run() -> None:
        with ThreadPoolExecutor(1) as ex:
            writer = ReplayWriter(ex)
            log = ReplayLog(tmp_path / "s.jsonl", writer)
            for i in range(1, 200):
                log.append(result(i))  # the first starts a job, the rest wait for the next one
            await log.close(remove=True)  # done: queued lines dropped, the job in flight awaited, file removed
            assert not log.path.exists()
            await writer.settle()
            await asyncio.sleep(0.05)
            assert not log.path.exists()

    asyncio.run(run())


def test_a_cut_off_sequence_keeps_every_queued_line(tmp_path):
    async def run() -> None:
        with ThreadPoolExecutor(1) as ex:
            writer = ReplayWriter(ex)
            log = ReplayLog(tmp_path / "s.jsonl", writer)
            for i in range(1, 30):
                log.append(result(i))
            await log.close(remove=False)

    asyncio.run(run())
    assert [e["i"] for e in ReplayLog(tmp_path / "s.jsonl").entries] == list(range(1, 30))


def test_a_write_error_fails_only_its_own_log(tmp_path):
    async def run() -> None:
        with ThreadPoolExecutor(1) as ex:
            writer = ReplayWriter(ex)
            good = ReplayLog(tmp_path / "ok" / "a.jsonl", writer)
            bad = ReplayLog(tmp_path / "gone" / "b.jsonl", writer)
            shutil.rmtree(tmp_path / "gone")  # its folder disappears: every append to it fails
            good.append(result(1))
            bad.append(result(1))
            await writer.settle()
            with pytest.raises(OutputUnwritable, match=r"cannot write .*gone/b\.jsonl"):
                bad.append(result(2))  # the earlier failure, raised to its own sequence, naming its file
            good.append(result(2))
            await good.settle()
            bad.append(result(3))
            with pytest.raises(OutputUnwritable, match="No such file"):
                await bad.settle()

    asyncio.run(run())
    assert [e["i"] for e in ReplayLog(tmp_path / "ok" / "a.jsonl").entries] == [1, 2]


def test_a_log_settles_when_its_own_lines_are_written_not_when_every_log_is(tmp_path, monkeypatch):
    import threading

    import r1track.evalfolder as evalfolder

    gate = threading.Event()
    real = evalfolder._append_batch

    def slow_for_b(batch):
        if any(p.name == "b.jsonl" for p in batch):
            gate.wait(10)  # another sequence's write that takes long (a slow disk)
        return real(batch)

    monkeypatch.setattr(evalfolder, "_append_batch", slow_for_b)

    async def run() -> None:
        with ThreadPoolExecutor(1) as ex:
            writer = ReplayWriter(ex)
            a = ReplayLog(tmp_path / "a.jsonl", writer)
            b = ReplayLog(tmp_path / "b.jsonl", writer)
            a.append(result(1))  # a's batch is in flight ...
            b.append(result(1))  # ... b's waits for it, then blocks at the gate
            try:
                await asyncio.wait_for(a.settle(), 5)  # a's line is written: no need to wait for b's
                assert [e["i"] for e in ReplayLog(tmp_path / "a.jsonl").entries] == [1]
                assert writer._pending(b.path)
            finally:
                gate.set()
            await b.settle()

    asyncio.run(run())
    assert [e["i"] for e in ReplayLog(tmp_path / "b.jsonl").entries] == [1]
