"""Where an in-process engine's time goes: one record per engine call, summed for ``run.json`` and the summary.

Every in-process engine (:class:`r1track.backends.local.LocalEngineBackend`) records, per engine call (batch):
``requests`` and ``fill`` (requests / batch size), ``seconds`` (the call's wall time), ``idle_s`` (how long the
engine waited for this batch since the previous call ended: an engine starved by its client shows here), and
``prepare_s`` (seconds spent preparing the batch's requests; off the critical path when they were prepared
ahead, in the evaluation's thread pool, while earlier batches ran: ``inline`` counts those prepared on the engine
thread instead). The ``transformers`` engine adds the split of the call: ``inputs_s`` (model inputs made on the
engine thread: the processor, or the direct inputs' padding and pixel lookup), ``vision_s`` (vision tower),
``prefill_s`` (the rest of the first forward pass: embedding merge, position ids, language-model prefill),
``decode_s`` (every later step) and ``decode_steps``; on CUDA ``peak_memory_mb`` (``torch.cuda.max_memory_allocated``
over the call) and the split is timed with CUDA events (no extra synchronisation). ``path``: ``direct`` or
``processor`` (how the inputs were made).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["BatchRecord", "EngineReport", "format_engine_report", "SPLIT_FIELDS"]

SPLIT_FIELDS = ("prepare_s", "inputs_s", "vision_s", "prefill_s", "decode_s")
"""The per-batch seconds the report sums (those an engine measured)."""

PER_BATCH_LIMIT = 20000
"""Most per-batch records written to run.json (the sums always cover every batch)."""


@dataclass
class BatchRecord:
    """One engine call (module docstring); None: not measured by this engine."""

    requests: int
    fill: float
    seconds: float
    idle_s: float = 0.0
    prepare_s: float | None = None
    inline: int = 0
    inputs_s: float | None = None
    vision_s: float | None = None
    prefill_s: float | None = None
    decode_s: float | None = None
    decode_steps: int | None = None
    peak_memory_mb: float | None = None
    path: str | None = None

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items() if v is not None}


@dataclass
class EngineReport:
    """An engine's records and settings (``engine``: its name; ``settings``: what it resolved at load, such as
    device, dtype, vision attention, inputs)."""

    engine: str
    batch_size: int
    settings: dict = field(default_factory=dict)
    batches: list[BatchRecord] = field(default_factory=list)

    def totals(self) -> dict:
        """Sums and means over every batch."""
        n = len(self.batches)
        requests = sum(b.requests for b in self.batches)
        out: dict[str, Any] = {
            "batches": n,
            "requests": requests,
            "fill_mean": round(sum(b.fill for b in self.batches) / n, 4) if n else 0.0,
            "seconds": round(sum(b.seconds for b in self.batches), 3),
            "idle_s": round(sum(b.idle_s for b in self.batches), 3),
            "inline": sum(b.inline for b in self.batches),
        }
        for name in SPLIT_FIELDS:
            values = [getattr(b, name) for b in self.batches if getattr(b, name) is not None]
            if values:
                out[name] = round(sum(values), 3)
        steps = [b.decode_steps for b in self.batches if b.decode_steps is not None]
        if steps:
            out["decode_steps"] = sum(steps)
        peaks = [b.peak_memory_mb for b in self.batches if b.peak_memory_mb is not None]
        if peaks:
            out["peak_memory_mb"] = round(max(peaks), 1)
        paths = [b.path for b in self.batches if b.path is not None]
        if paths:
            out["paths"] = {p: paths.count(p) for p in sorted(set(paths))}
        return out

    def to_json(self, *, per_batch: bool = True) -> dict:
        """``run.json``'s ``engine`` entry: settings, totals and (``per_batch``) one record per batch."""
        doc: dict[str, Any] = {"engine": self.engine, "batch_size": self.batch_size, "settings": dict(self.settings),
                               "totals": self.totals()}
        if per_batch:
            doc["per_batch"] = [b.to_json() for b in self.batches[:PER_BATCH_LIMIT]]
            if len(self.batches) > PER_BATCH_LIMIT:
                doc["per_batch_truncated"] = len(self.batches) - PER_BATCH_LIMIT
        return doc


def format_engine_report(doc: dict) -> str:
    """The end-of-run summary lines of a ``run.json`` ``engine`` entry (:meth:`EngineReport.to_json`)."""
    t = doc.get("totals", {})
    if not t.get("batches"):
        return f"engine {doc.get('engine', '?')}: no engine call"
    lines = [f"engine {doc.get('engine', '?')}: {t['batches']} batches of up to {doc.get('batch_size', '?')} "
             f"(mean fill {100 * t.get('fill_mean', 0):.0f} %), {t.get('seconds', 0):.1f} s in engine calls, "
             f"{t.get('idle_s', 0):.1f} s idle between them"]
    split = [f"{label} {t[key]:.1f} s" for key, label in (("inputs_s", "inputs"), ("vision_s", "vision"),
                                                         ("prefill_s", "prefill"), ("decode_s", "decode")) if key in t]
    if split:
        lines.append("  per call: " + ", ".join(split)
                     + (f" ({t['decode_steps']} decode steps)" if "decode_steps" in t else ""))
    if "prepare_s" in t:
        ahead = t["requests"] - t.get("inline", 0)
        lines.append(f"  preparation {t['prepare_s']:.1f} s, {ahead} of {t['requests']} requests prepared ahead "
                     "(off the engine thread)")
    if "peak_memory_mb" in t:
        lines.append(f"  peak GPU memory {t['peak_memory_mb'] / 1024:.2f} GiB")
    settings = doc.get("settings") or {}
    if settings:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in settings.items()))
    return "\n".join(lines)
