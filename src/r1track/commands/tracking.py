"""Command-line options shared by the commands that track (``eval``, ``track``): presets, backend, the
dead-server limits (:class:`r1track.faults.FaultPolicy`) and every tracker setting.

The tracker flags are generated from ``dataclasses.fields(TrackerParams)``: the flag name, type, default and
help all come from the dataclass, so a new setting appears here by itself. Every flag defaults to "not
given" (None), so :func:`resolve_settings` knows which settings the user chose explicitly: those win over
the preset (see :mod:`r1track.presets`).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from ..faults import FaultPolicy

__all__ = ["add_tracker_arguments", "tracker_overrides", "add_backend_arguments", "backend_options", "resolve_settings",
           "served_family", "served_listings", "fault_policy", "failure_lines"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: Any) -> type:
    """``int`` for ``int`` and ``int | None``; the same for float, str, bool."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def add_tracker_arguments(p: argparse.ArgumentParser) -> None:
    """``--preset`` and one flag per :class:`~r1track.tracker.TrackerParams` field (booleans as
    ``--name/--no-name``)."""
    from ..presets import DEFAULT_PRESET, PRESETS
    from ..tracker import TrackerParams

    g = p.add_argument_group(
        "tracker", "settings start from --preset, else the preset of a known --model checkpoint, else "
        "'default'; a flag given here always wins. Defaults shown are the 'default' preset's.")
    g.add_argument("--preset", choices=list(PRESETS), help="named settings: " + "; ".join(
        f"{name}: {preset.summary}" for name, preset in PRESETS.items()) + f" (default: {DEFAULT_PRESET})")
    hints = typing.get_type_hints(TrackerParams)
    defaults = TrackerParams()
    for f in dataclasses.fields(TrackerParams):
        kind = _base_type(hints[f.name])
        if kind not in (bool, int, float):
            kind = str
        text = f"{f.metadata.get('help', f.name)} (default: {getattr(defaults, f.name)})".replace("%", "%%")
        if kind is bool:
            g.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif "choices" in f.metadata:
            g.add_argument(_flag(f.name), dest=f.name, choices=f.metadata["choices"], default=None, help=text)
        else:
            choices = f.metadata.get("choices")
            g.add_argument(_flag(f.name), dest=f.name, type=kind, default=None, choices=choices,
                           metavar="{" + ",".join(choices) + "}" if choices else kind.__name__.upper(), help=text)


def tracker_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The tracker settings given explicitly on the command line (field name -> value)."""
    from ..tracker import TrackerParams

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrackerParams) if getattr(args, f.name, None) is not None}


def add_backend_arguments(p: argparse.ArgumentParser, *, ground_truth: bool = True) -> None:
    """``--backend`` (names from the backend registry; ``ground_truth=False`` leaves out those that need
    ground truth), servers, model, timeouts."""
    from ..backends import BACKENDS, backend_names

    names = backend_names(ground_truth=ground_truth)
    g = p.add_argument_group("backend")
    g.add_argument("--backend", choices=names, default=None,
                   help="who answers: " + "; ".join(f"{n}: {BACKENDS[n].summary}" for n in names)
                   + " (default: the preset's, openai for all but 'ncc')")
    g.add_argument("--server", action="append", default=[], metavar="URL",
                   help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (repeatable; default $R1TRACK_BASE_URL)")
    g.add_argument("--model", help="served model name (default: $R1TRACK_MODEL or the server's first model), or for "
                   "--backend transformers/vllm the checkpoint to load (hub id or folder); a published checkpoint's "
                   "name (e.g. WangBiao/R1-Track-GRPO-5k) also picks its preset")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request attempt (default 120)")
    g.add_argument("--retries", type=int, default=3, help="retries per request on connection errors, 5xx and 429 (default 3)")
    d = FaultPolicy()
    g.add_argument("--max-consecutive-faults", type=int, default=d.max_consecutive_faults, metavar="N",
                   help=f"stop a sequence (failed, no result) after N frames in a row without a reply "
                        f"(default {d.max_consecutive_faults})")
    g.add_argument("--max-fault-seconds", type=float, default=d.max_fault_seconds, metavar="S",
                   help=f"... or S seconds since its last reply (default {d.max_fault_seconds:g})")

    from ..backends.hf import DEVICES, DTYPES

    e = p.add_argument_group("in-process engines (--backend transformers or vllm)")
    e.add_argument("--batch-size", type=int, default=None,
                   help="most requests of the sequences in flight per engine call (default: vllm 256, its own "
                   "max_num_seqs; transformers 16)")
    e.add_argument("--dtype", choices=DTYPES, default="auto", help="weights' dtype (default auto: the checkpoint's; "
                   "transformers on CPU turns float16 into float32)")
    e.add_argument("--device", default="auto", help=f"transformers: {', '.join(DEVICES)} or cuda:N (default auto: cuda, "
                   "else mps, else cpu)")
    from ..backends.hf import TransformersOptions

    for f in dataclasses.fields(TransformersOptions):  # --vision-attention, --engine-inputs, --decode-cache
        e.add_argument("--" + f.name.replace("_", "-"), choices=f.metadata["choices"], default=f.default,
                       help=f.metadata["help"])
    e.add_argument("--max-model-len", type=int, default=4096, help="vllm: context length (default 4096)")
    e.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm: share of GPU memory (default 0.9)")
    e.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per model (default 1)")
    e.add_argument("--enforce-eager", action="store_true", help="vllm: no CUDA graphs / compilation (faster start)")


def fault_policy(args: argparse.Namespace) -> FaultPolicy:
    """The --max-consecutive-faults / --max-fault-seconds policy; CommandError when invalid."""
    from . import CommandError

    try:
        return FaultPolicy(args.max_consecutive_faults, args.max_fault_seconds)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def failure_lines(failed: list, what: str = "sequence") -> list[str]:
    """The closing lines for failed sequences (:class:`r1track.evaluate.SequenceOutcome`): how many, and
    why (those stopped for want of replies name their servers)."""
    if not failed:
        return []
    stopped = [o for o in failed if o.stopped]
    servers = sorted({o.server for o in stopped})
    lines = [f"{len(failed)} {what}(s) FAILED (no result files written):"]
    if stopped:
        lines.append(f"  {len(stopped)} stopped because the server gave no reply: {', '.join(servers)}")
    if len(failed) > len(stopped):
        lines.append(f"  {len(failed) - len(stopped)} failed on errors (listed above)")
    lines.append("rerun the same command to resume them (finished sequences are kept)")
    return lines


def backend_options(args: argparse.Namespace, backend: str, params: Any = None) -> dict:
    """Keyword options for :func:`r1track.backends.make_backend` from the backend flags (not the server URL or
    model). ``params``: the tracker settings (the ``vllm`` engine reserves room for 3 images with a memory frame)."""
    from ..backends import get_backend_spec

    spec = get_backend_spec(backend)
    if spec.needs_server:
        return {"timeout_s": args.timeout, "retries": args.retries}
    if backend == "transformers":
        from ..backends.hf import TransformersOptions

        return {"batch_size": args.batch_size, "device": args.device, "dtype": args.dtype,
                **{f.name: getattr(args, f.name) for f in dataclasses.fields(TransformersOptions)}}
    if backend == "vllm":
        return {"batch_size": args.batch_size, "dtype": args.dtype, "max_model_len": args.max_model_len,
                "gpu_memory_utilization": args.gpu_memory_utilization, "tensor_parallel_size": args.tensor_parallel_size,
                "enforce_eager": args.enforce_eager, "max_images": 3 if params is not None and params.memory else 2}
    return {}


def served_listings(args: argparse.Namespace, model: str | None, *, lookup: Any = None,
                    deadline: float | None = None) -> list[tuple[str, object]]:
    """(base URL, ``GET /v1/models`` answer) of each ``--server`` (or the default one). The servers are asked at
    once, through ``lookup`` (a :class:`~r1track.backends.model_lookup.ModelLookup`: the backends built later with
    it do not ask again), each giving up at ``deadline`` (``time.monotonic()`` seconds).
    :class:`~r1track.backends.model_lookup.LookupFailed` when a server cannot be asked: its message names the cause
    first, its ``exit_status`` is 3 when the server refused (:class:`~r1track.backends.ServerRefused`: the key or
    the URL is wrong, not the family), 1 when a rerun can succeed once the server answers, else 2."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from ..backends import BackendError, make_backend
    from ..backends.model_lookup import LookupFailed, ModelLookup

    lookup = lookup if lookup is not None else ModelLookup()
    backends = [make_backend("openai", base_url=url, model=model, lookup=lookup, **backend_options(args, "openai"))
                for url in args.server or [None]]
    t0 = time.monotonic()

    def ask(backend):
        try:
            return backend.model_listing(deadline)
        except BackendError as exc:
            raise LookupFailed(exc, url=backend.base_url, source=backend.url_source,
                               seconds=time.monotonic() - t0) from None

    try:
        with ThreadPoolExecutor(len(backends)) as pool:
            listings = list(pool.map(ask, backends))
    finally:
        for backend in backends:
            backend.close()
    return [(backend.base_url, listing) for backend, listing in zip(backends, listings)]


def served_family(args: argparse.Namespace, model: str | None, *, lookup: Any = None,
                  deadline: float | None = None) -> str:
    """The model family of what the servers serve (:func:`r1track.models.resolve_family` of each server's
    listing, :func:`served_listings`): each ``--server``'s ``GET /v1/models`` entry for ``model`` (its ``root``,
    the path or name vLLM loaded, then its id), else ``model``'s name. All servers must agree.
    ``UnknownModelFamily`` (a ValueError naming the families, the cause first) when nothing tells;
    :class:`~r1track.backends.model_lookup.LookupFailed` when a server cannot be asked or refuses."""
    from ..backends.model_lookup import unknown_family_message
    from ..models import UnknownModelFamily, resolve_family

    found: dict[str, str] = {}
    for url, listing in served_listings(args, model, lookup=lookup, deadline=deadline):
        try:
            found[url] = resolve_family(model=model, listing=listing).family.name
        except UnknownModelFamily:
            raise UnknownModelFamily(unknown_family_message(url, model, listing)) from None
    if len(set(found.values())) > 1:
        raise UnknownModelFamily(f"the servers serve models of different families ({found}); run them separately "
                                 "or pass --model-family")
    return next(iter(found.values()))


def resolve_settings(args: argparse.Namespace, warn=None, *, lookup: Any = None, deadline: float | None = None):
    """:func:`r1track.presets.resolve` of the parsed flags (``--preset``, ``--model``, ``--backend``, the
    tracker flags). The model name for the preset comes from ``--model`` or ``$R1TRACK_MODEL``. The model
    family comes from one function for every backend, :func:`r1track.models.resolve_family`: ``--model-family``
    (a warning names both when ``--model`` tells another family), else -- for backends that ask a server and a
    model that is not a registered checkpoint -- what the servers list (:func:`served_family`, through
    ``lookup``, giving up at ``deadline``), else what ``--model`` tells (a registered checkpoint, a LoRA adapter's
    base model, a folder's config, the name); a model that answers (server, in-process engine) of unknown family
    is refused, ``ncc`` and ``oracle`` fall back to qwen2.5-vl. ``warn(message)``: where warnings go (default:
    stderr)."""
    import os
    import sys

    from ..backends import get_backend_spec
    from ..backends.openai import ENV_MODEL
    from ..models import DEFAULT_FAMILY, resolve_family
    from ..presets import chosen_preset, find_checkpoint, resolve

    warn = warn or (lambda msg: print(f"r1track: warning: {msg}", file=sys.stderr))
    model = args.model or os.environ.get(ENV_MODEL) or None
    overrides = tracker_overrides(args)
    # the backend first, without the settings: a crop side given for the served family (256 px for a Qwen3-VL
    # server) is only valid once that family is known
    spec = get_backend_spec(args.backend or chosen_preset(args.preset, model).backend)
    explicit = overrides.get("model_family")
    if spec.in_process and model is None and explicit is None:  # the engine refuses to start without one, naming --model
        return resolve(args.preset, model, overrides, backend=args.backend)
    if explicit is None and spec.needs_server and not find_checkpoint(model):
        family = served_family(args, model, lookup=lookup, deadline=deadline)
    else:
        choice = resolve_family(family=explicit, model=model,
                                default=None if (spec.needs_server or spec.in_process) else DEFAULT_FAMILY)
        if choice.warning:
            warn(choice.warning)
        family = choice.family.name
    return resolve(args.preset, model, overrides, backend=args.backend, family=family)
