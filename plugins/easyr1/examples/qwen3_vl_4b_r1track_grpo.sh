#!/usr/bin/env bash
# GRPO for single-object tracking with EasyR1 on Qwen3-VL-4B-Instruct (or Qwen3.5: MODEL_PATH), no-think: the
# Qwen2.5-VL script next to this one with Qwen3's model; same variables, reward and R1TRACK_DRY_RUN=1.
#
#   TRAIN_FILE=/data/r1track-qwen3-vl/easyr1/train.parquet VAL_FILE=/data/r1track-qwen3-vl/easyr1/val.parquet \
#     bash plugins/easyr1/examples/qwen3_vl_4b_r1track_grpo.sh [key=value ...]
#
# Data: `r1track data build --model-family qwen3-vl --format easyr1` (answers on the 0-1000 grid, crops of 256..512
# px, multiples of 32). Pixels: EasyR1 rescales only images outside [data.min_pixels, data.max_pixels]; the script's
# 3136 / 4194304 keep every Qwen3 crop (EasyR1's default min_pixels 262144 would turn 384-px crops into 512-px ones),
# and Qwen3-VL's processor (factor 32, min 65536 px) then leaves them alone.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export MODEL_PATH="${MODEL_PATH:-Qwen/Qwen3-VL-4B-Instruct}"
export EXPERIMENT_NAME="${EXPERIMENT_NAME:-qwen3_vl_4b_r1track_grpo}"
exec bash "$HERE/qwen2_5_vl_3b_r1track_grpo.sh" "$@"
