"""The LLaMA-Factory installer: r1track's dataset entries merged into ``data/dataset_info.json`` (every existing
entry kept) and the SFT / merge example yamls (with their ``dataset_dir`` pointed at ``data``) plus the plugin
files under ``examples/r1track/``."""

from __future__ import annotations

from .plan import FileMap, JsonMerge, TargetSpec

__all__ = ["SPEC"]

SPEC = TargetSpec(
    name="llamafactory",
    title="LLaMA-Factory",
    markers=("src/llamafactory", "data/dataset_info.json"),
    files=(
        FileMap(
            "examples/r1_track_lora_sft.yaml",
            "examples/r1track/r1_track_lora_sft.yaml",
            replace=(("dataset_dir: datasets_info", "dataset_dir: data"),),
        ),
        FileMap("examples/r1_track_lora_merge.yaml", "examples/r1track/r1_track_lora_merge.yaml"),
        FileMap("plugins/llamafactory", "examples/r1track"),
    ),
    merges=(JsonMerge("datasets_info/dataset_info.json", "data/dataset_info.json"),),
)
