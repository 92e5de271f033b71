#!/usr/bin/env bash
# GRPO for single-object tracking with EasyR1: Qwen2.5-VL-3B-Instruct thinking first: "<think>...</think><answer>[x1,y1,x2,y2]</answer>",
# R1-Track's recipe on current EasyR1 with zero edits to EasyR1.
#
# Needs, in one environment: EasyR1 (current API: worker.reward.reward_function + data.format_prompt) and
# r1track (`pip install -e <r1track checkout>`: the reward file imports it). Run from anywhere.
# Data: the EasyR1 writer of `r1track data build` -- separate train and val parquet files (problem / answer / images).
#
#   TRAIN_FILE=/data/r1track/easyr1/train.parquet VAL_FILE=/data/r1track/easyr1/val.parquet \
#     bash plugins/easyr1/examples/qwen2_5_vl_3b_r1track_grpo_think.sh [key=value ...]
#
# Variables: TRAIN_FILE, VAL_FILE (required); MODEL_PATH (default Qwen/Qwen2.5-VL-3B-Instruct -- better: your SFT
# checkpoint); N_GPUS (1); LIMIT_IMAGES (2; 3 for memory-frame data); EXPERIMENT_NAME; PYTHON (python3);
# THINK_LAYOUT (images-first, r1track's; or instruction-first: the think instruction, then the images, then the
# task, the layout R1-Track's own think GRPO run trained its published checkpoint with).
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
EXPERIMENT_NAME="${EXPERIMENT_NAME:-qwen2_5_vl_3b_r1track_grpo_think}"
REWARD_FILE="$PLUGIN/reward_function/r1track.py"
THINK_LAYOUT="${THINK_LAYOUT:-images-first}"
case "$THINK_LAYOUT" in
  images-first) FORMAT_PROMPT="$PLUGIN/format_prompt/r1track_think.jinja" ;;
  instruction-first) FORMAT_PROMPT="$PLUGIN/format_prompt/r1track_think_instruction_first.jinja" ;;
  *) echo "error: THINK_LAYOUT must be images-first or instruction-first, got '$THINK_LAYOUT'" >&2; exit 2 ;;
esac

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
  # problem = render_text(version, think=False); r1track_think.jinja inserts the think instruction after the
  # images, giving exactly render_text(version, think=True) (the instruction-first template gives
  # render_text(version, think=True, think_layout="instruction-first")).
  data.format_prompt="$FORMAT_PROMPT"
  # The pixel trap: min_pixels <= crop area <= max_pixels for every crop size, or EasyR1 resizes the crops and
  # every box label is wrong (its default min_pixels 262144 turns 336-px crops into 504-px ones).
  data.min_pixels=3136
  data.max_pixels=4194304
  # Room to think. The reward's length terms assume 512: replies under 128 tokens score -1 and replies over 448
  # lose up to 0.1; change worker.reward.reward_function_kwargs.max_length (and min_length,
  # length_penalty_start) together with this value.
  data.max_response_length=512
  worker.actor.model.model_path="$MODEL_PATH"
  worker.reward.reward_function="$REWARD_FILE:compute_score"
  worker.reward.reward_function_kwargs.mode=think
  worker.reward.reward_function_kwargs.shaping=r1track
  # Images per prompt vLLM accepts: 2 (template, search); 3 for memory-frame data.
  worker.rollout.limit_images="$LIMIT_IMAGES"
  # GRPO group size.
  worker.rollout.n=5
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
