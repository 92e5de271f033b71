#!/usr/bin/env bash
# GRPO for single-object tracking with verl (PyPI verl 0.9.x) on Qwen3-VL-4B-Instruct (or Qwen3.5: MODEL_PATH):
# the Qwen2.5-VL script next to this one with Qwen3's model; same variables, same reward entry point
# (pkg://r1track.integrations.verl), same R1TRACK_DRY_RUN=1.
#
#   TRAIN_FILE=/data/r1track-qwen3-vl/verl/train.parquet VAL_FILE=/data/r1track-qwen3-vl/verl/val.parquet \
#     bash examples/verl/qwen3_vl_r1track_grpo.sh [hydra overrides ...]
#
# Data: `r1track data build --model-family qwen3-vl --format verl` -- reward_model.ground_truth is "[x1,y1,x2,y2]"
# on Qwen3-VL's 0-1000 grid, the coordinates the model answers in; the reward compares the two as they are (IoU and
# GIoU do not change under the grid's uniform scaling). Pixels: verl loads images through qwen_vl_utils.fetch_image
# with the processor's patch size (16: sides rounded to multiples of 32, bounds 4096 .. 16777216 px), then the
# processor applies its own minimum of 65536 px: the 256-512 px crops r1track writes for Qwen3 pass unchanged.
# Keep crop sides at multiples of 32, >= 256, and add no min_pixels/max_pixels to the image entries.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export MODEL_PATH="${MODEL_PATH:-Qwen/Qwen3-VL-4B-Instruct}"
export EXPERIMENT_NAME="${EXPERIMENT_NAME:-qwen3_vl_4b_r1track_grpo_verl_${MODE:-no-think}}"
exec bash "$HERE/qwen2_5_vl_3b_r1track_grpo.sh" "$@"
