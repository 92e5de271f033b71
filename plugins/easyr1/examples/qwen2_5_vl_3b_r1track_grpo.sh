#!/usr/bin/env bash
# GRPO for single-object tracking with EasyR1: Qwen2.5-VL-3B-Instruct answering a bare "[x1,y1,x2,y2]" (no-think),
# R1-Track's recipe on current EasyR1 with zero edits to EasyR1.
#
# Needs, in one environment: EasyR1 (current API: worker.reward.reward_function + data.format_prompt) and
# r1track (`pip install -e <r1track checkout>`: the reward file imports it). Run from anywhere.
# Data: the EasyR1 writer of `r1track data build` -- separate train and val parquet files (problem / answer / images).
#
#   TRAIN_FILE=/data/r1track/easyr1/train.parquet VAL_FILE=/data/r1track/easyr1/val.parquet \
#     bash plugins/easyr1/examples/qwen2_5_vl_3b_r1track_grpo.sh [key=value ...]
#
# Variables: TRAIN_FILE, VAL_FILE (required); MODEL_PATH (default Qwen/Qwen2.5-VL-3B-Instruct -- better: your SFT
# checkpoint); N_GPUS (1); LIMIT_IMAGES (2; 3 for memory-frame data); EXPERIMENT_NAME; PYTHON (python3).
# R1TRACK_DRY_RUN=1 prints the EasyR1 arguments, one per line, and exits. Extra key=value arguments are appended
# and win, e.g. worker.reward.reward_function_kwargs.shaping=giou or trainer.logger='["console","wandb"]'.
# No VLLM_USE_V1 (vLLM >= 0.11 has no V0 engine) and none of the removed keys of R1-Track's EasyR1 fork.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PLUGIN="$(cd "$HERE/.." && pwd)"
PYTHON="${PYTHON:-python3}"
: "${TRAIN_FILE:?set TRAIN_FILE to the EasyR1 train parquet written by r1track data build}"
: "${VAL_FILE:?set VAL_FILE to the EasyR1 val parquet (a separate file: EasyR1 reads only split train of a file)}"
MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-VL-3B-Instruct}"
N_GPUS="${N_GPUS:-1}"
LIMIT_IMAGES="${LIMIT_IMAGES:-2}"
EXPERIMENT_NAME="${EXPERIMENT_NAME:-qwen2_5_vl_3b_r1track_grpo}"
REWARD_FILE="$PLUGIN/reward_function/r1track.py"
FORMAT_PROMPT="$PLUGIN/format_prompt/r1track.jinja"

for f in "$TRAIN_FILE" "$VAL_FILE" "$REWARD_FILE" "$FORMAT_PROMPT"; do
  # EasyR1 only prints a line for a missing format prompt and trains without it: fail here instead.
  [[ -f "$f" ]] || { echo "error: $f not found" >&2; exit 2; }
done
case "$TRAIN_FILE$VAL_FILE" in
  *@*) echo "error: pass plain parquet paths without @split (EasyR1 splits paths on '@')" >&2; exit 2 ;;
esac
"$PYTHON" -c "import r1track.reward" || { echo "error: r1track is not installed for $PYTHON (pip install -e <r1track checkout>)" >&2; exit 2; }
source "$HERE/check_omegaconf.bash"  # EasyR1 cannot load its config with omegaconf >= 2.4

args=(
  config="$HERE/config.yaml"
  data.train_files="$TRAIN_FILE"
  data.val_files="$VAL_FILE"
  # problem = render_text(version, think=False); r1track.jinja leaves it unchanged.
  data.format_prompt="$FORMAT_PROMPT"
  # The pixel trap: min_pixels <= crop area <= max_pixels for every crop size, or EasyR1 resizes the crops and
  # every box label is wrong (its default min_pixels 262144 turns 336-px crops into 504-px ones).
  data.min_pixels=3136
  data.max_pixels=4194304
  # A bare box is ~15 tokens.
  data.max_response_length=64
  worker.actor.model.model_path="$MODEL_PATH"
  worker.reward.reward_function="$REWARD_FILE:compute_score"
  worker.reward.reward_function_kwargs.mode=no-think
  worker.reward.reward_function_kwargs.shaping=r1track
  # Images per prompt vLLM accepts: 2 (template, search); 3 for memory-frame data.
  worker.rollout.limit_images="$LIMIT_IMAGES"
  # GRPO group size.
  worker.rollout.n=8
  # One vLLM replica per GPU: a 3B model needs no tensor parallelism (EasyR1's default 2 fails on one GPU).
  worker.rollout.tensor_parallel_size=1
  trainer.n_gpus_per_node="$N_GPUS"
  trainer.experiment_name="$EXPERIMENT_NAME"
  "$@"
)

if [[ -n "${R1TRACK_DRY_RUN:-}" ]]; then
  printf '%s\n' "${args[@]}"
  exit 0
fi
exec "$PYTHON" -m verl.trainer.main "${args[@]}"
