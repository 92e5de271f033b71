"""Output formats of ``r1track data build``. One build can feed several writers.

Every writer writes into the build's temporary folder (the builder renames the whole folder into
place at the end), in sample order, so the bytes depend only on the samples.

* ``llamafactory`` — LLaMA-Factory ShareGPT (``docs/upstream.md``, LLaMA-Factory): ``llamafactory/images/<split>/
  <index>_<role>.jpg``; ``llamafactory/<split>.json``, a list of ``{"messages": [user, assistant],
  "images": [...]}`` where the user text holds one ``<image>`` per image (in order) and image paths
  are relative to LLaMA-Factory's ``dataset_dir``; ``llamafactory/dataset_info.json`` with this
  build's entries (``<name>_train``, ``<name>_val``).
* ``easyr1`` — EasyR1 (``docs/upstream.md``, EasyR1): ``easyr1/train.parquet`` and ``easyr1/val.parquet``
  (separate files: a single local file only has split "train"), columns ``problem`` (text with
  ``<image>`` placeholders), ``answer`` (``"[x1,y1,x2,y2]"``, a JSON string) and ``images`` (list of
  ``{bytes, path}``).
* ``verl`` — verl 0.9 (``docs/upstream.md``, verl): ``verl/train.parquet`` and ``verl/val.parquet``,
  columns ``data_source``, ``prompt`` (chat messages; the user content holds the ``<image>``
  placeholders), ``images`` (list of ``{bytes, path}``), ``ability``, ``reward_model``
  (``{style: "rule", ground_truth: "[x1,y1,x2,y2]"}``) and ``extra_info``.

Texts come from :mod:`r1track.prompts` only (``render_text`` / ``render_answer``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "FORMATS",
    "BuiltSample",
    "Writer",
    "ShareGPTWriter",
    "EasyR1Writer",
    "VerlWriter",
    "make_writer",
    "llamafactory_entries",
    "PARQUET_BATCH_ROWS",
]

FORMATS = ("llamafactory", "easyr1", "verl")
SPLITS = ("train", "val")
PARQUET_BATCH_ROWS = 256
"""Rows per parquet row group (fixed, so the files are byte-identical across runs)."""

DATA_SOURCE = "r1track"


@dataclass(frozen=True)
class BuiltSample:
    """A rendered sample with its texts. ``image_names``: file names (``000012_template.jpg``);
    ``user_text``: prompt with ``<image>`` placeholders; ``answer``: ``[x1,y1,x2,y2]`` in the
    search crop (model-input frame); ``ground_truth`` as stored for rewards (same string);
    ``extra``: provenance (JSON-serialisable)."""

    split: str
    index: int
    image_names: tuple[str, ...]
    jpegs: tuple[bytes, ...]
    user_text: str
    answer: str
    extra: dict


class Writer(Protocol):
    def add(self, sample: BuiltSample) -> None: ...

    def close(self) -> dict: ...


def llamafactory_entries(name: str, prefix: str) -> dict:
    """LLaMA-Factory ``dataset_info.json`` entries of a build whose ``llamafactory/`` folder lives at
    ``<dataset_dir>/<prefix>/llamafactory`` (``prefix`` POSIX, relative to the dataset dir)."""
    def entry(split: str) -> dict:
        return {
            "file_name": f"{prefix}/llamafactory/{split}.json" if prefix else f"llamafactory/{split}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }

    return {f"{name}_{split}": entry(split) for split in SPLITS}


class ShareGPTWriter:
    """LLaMA-Factory ShareGPT JSON plus JPEG files (see module docstring)."""

    def __init__(self, tmp_root: Path, *, name: str, prefix: str) -> None:
        self.root = tmp_root / "llamafactory"
        self.prefix = prefix
        self.name = name
        self.files = {}
        self.counts = {s: 0 for s in SPLITS}
        for split in SPLITS:
            (self.root / "images" / split).mkdir(parents=True, exist_ok=True)
            fh = open(self.root / f"{split}.json", "w", encoding="utf-8")
            fh.write("[")
            self.files[split] = fh

    def _path(self, split: str, image_name: str) -> str:
        rel = f"llamafactory/images/{split}/{image_name}"
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def add(self, sample: BuiltSample) -> None:
        for image_name, data in zip(sample.image_names, sample.jpegs):
            (self.root / "images" / sample.split / image_name).write_bytes(data)
        record = {
            "messages": [
                {"role": "user", "content": sample.user_text},
                {"role": "assistant", "content": sample.answer},
            ],
            "images": [self._path(sample.split, n) for n in sample.image_names],
        }
        fh = self.files[sample.split]
        fh.write(("\n" if self.counts[sample.split] == 0 else ",\n") + json.dumps(record, ensure_ascii=False))
        self.counts[sample.split] += 1

    def close(self) -> dict:
        for split, fh in self.files.items():
            fh.write("\n]\n" if self.counts[split] else "]\n")
            fh.close()
        entries = llamafactory_entries(self.name, self.prefix)
        (self.root / "dataset_info.json").write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
        return {"format": "llamafactory", "samples": dict(self.counts), "dataset_info": entries}

    def abort(self) -> None:
        for fh in self.files.values():
            fh.close()


class _ParquetWriter:
    """Streams rows into one parquet file per split, ``PARQUET_BATCH_ROWS`` rows per row group."""

    folder = ""

    def __init__(self, tmp_root: Path) -> None:
        import pyarrow as pa  # lazy: `import r1track` stays light
        import pyarrow.parquet as pq

        self.pa, self.pq = pa, pq
        self.root = tmp_root / self.folder
        self.root.mkdir(parents=True, exist_ok=True)
        self.schema = self.make_schema(pa)
        self.writers = {s: pq.ParquetWriter(self.root / f"{s}.parquet", self.schema) for s in SPLITS}
        self.buffers: dict[str, list[dict]] = {s: [] for s in SPLITS}
        self.counts = {s: 0 for s in SPLITS}

    def make_schema(self, pa):  # pragma: no cover - overridden
        raise NotImplementedError

    def row(self, sample: BuiltSample) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def add(self, sample: BuiltSample) -> None:
        buf = self.buffers[sample.split]
        buf.append(self.row(sample))
        self.counts[sample.split] += 1
        if len(buf) >= PARQUET_BATCH_ROWS:
            self._flush(sample.split)

    def _flush(self, split: str) -> None:
        buf = self.buffers[split]
        if buf:
            self.writers[split].write_table(self.pa.Table.from_pylist(buf, schema=self.schema))
            buf.clear()

    def close(self) -> dict:
        for split in SPLITS:
            self._flush(split)
            self.writers[split].close()
        return {"format": self.folder, "samples": dict(self.counts)}

    def abort(self) -> None:
        for w in self.writers.values():
            try:
                w.close()
            except Exception:  # noqa: BLE001 - best effort while failing anyway
                pass


def _images_type(pa):
    return pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


def _images(sample: BuiltSample) -> list[dict]:
    return [{"bytes": b, "path": n} for n, b in zip(sample.image_names, sample.jpegs)]


class EasyR1Writer(_ParquetWriter):
    """EasyR1 parquet: problem / answer / images (see module docstring)."""

    folder = "easyr1"

    def make_schema(self, pa):
        return pa.schema([("problem", pa.string()), ("answer", pa.string()), ("images", _images_type(pa))])

    def row(self, sample: BuiltSample) -> dict:
        return {"problem": sample.user_text, "answer": sample.answer, "images": _images(sample)}


class VerlWriter(_ParquetWriter):
    """verl parquet: data_source / prompt / images / ability / reward_model / extra_info."""

    folder = "verl"

    def make_schema(self, pa):
        return pa.schema(
            [
                ("data_source", pa.string()),
                ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
                ("images", _images_type(pa)),
                ("ability", pa.string()),
                ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
                (
                    "extra_info",
                    pa.struct(
                        [
                            ("split", pa.string()),
                            ("index", pa.int64()),
                            ("dataset", pa.string()),
                            ("sequence", pa.string()),
                            ("frame_indices", pa.list_(pa.int64())),
                            ("crop_side", pa.int64()),
                            ("prompt_version", pa.string()),
                            ("answer", pa.string()),
                        ]
                    ),
                ),
            ]
        )

    def row(self, sample: BuiltSample) -> dict:
        e = sample.extra
        return {
            "data_source": DATA_SOURCE,
            "prompt": [{"role": "user", "content": sample.user_text}],
            "images": _images(sample),
            "ability": "tracking",
            "reward_model": {"style": "rule", "ground_truth": sample.answer},
            "extra_info": {
                "split": sample.split,
                "index": sample.index,
                "dataset": e["dataset"],
                "sequence": e["sequence"],
                "frame_indices": list(e["frame_indices"]),
                "crop_side": e["crop_side"],
                "prompt_version": e["prompt_version"],
                "answer": sample.answer,
            },
        }


def make_writer(fmt: str, tmp_root: Path, *, name: str, prefix: str):
    """The writer for ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "llamafactory":
        return ShareGPTWriter(tmp_root, name=name, prefix=prefix)
    if fmt == "easyr1":
        return EasyR1Writer(tmp_root)
    if fmt == "verl":
        return VerlWriter(tmp_root)
    raise ValueError(f"unknown output format {fmt!r}; known: {', '.join(FORMATS)}")
