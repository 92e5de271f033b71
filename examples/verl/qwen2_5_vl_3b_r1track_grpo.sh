#!/usr/bin/env bash
# GRPO for single-object tracking with verl (PyPI verl 0.9.x, `python -m verl.trainer.main_ppo`) on
# Qwen2.5-VL-3B-Instruct, scored by r1track's reward through verl's own custom-reward loader:
#   reward.custom_reward_function.path=pkg://r1track.integrations.verl   (an installed module, no file path)
#
# Needs, in one environment: verl (with vLLM for the rollout) and r1track (`pip install -e <r1track checkout>`;
# it imports neither verl nor torch). PyPI verl and EasyR1 both install a package named `verl`: separate envs.
# Data: the verl writer of `r1track data build` -- train and val parquet files with prompt (a chat message list
# whose user text holds one <image> per image, images first), images, data_source, reward_model.ground_truth
# ("[x1,y1,x2,y2]" in model-input pixels), extra_info. verl has no format-prompt template: for MODE=think build
# the data with the think text (the builder's think option), for MODE=no-think without it.
#
#   TRAIN_FILE=/data/r1track/verl/train.parquet VAL_FILE=/data/r1track/verl/val.parquet \
#     bash examples/verl/qwen2_5_vl_3b_r1track_grpo.sh [hydra overrides ...]
#
# Variables: TRAIN_FILE, VAL_FILE (required); MODE (no-think | think; default no-think); SHAPING (r1track | giou |
# iou; default r1track); MODEL_PATH (default Qwen/Qwen2.5-VL-3B-Instruct -- better: your SFT checkpoint);
# N_GPUS (1); LIMIT_IMAGES (2; 3 for memory-frame data); EXPERIMENT_NAME; PYTHON (python3).
# R1TRACK_DRY_RUN=1 prints the overrides, one per line, and exits.
#
# Pixels: verl resizes images with qwen_vl_utils' defaults (min 3136, max 12845056 pixels, sides rounded to
# multiples of 28), which leave every 112-448 px crop unchanged -- keep crop sides at multiples of 28 and do not
# add min_pixels/max_pixels to the image entries. Think mode: verl does not pass the reply's token count to the
# reward, so r1track's 128-token minimum and over-length penalty are off; max_response_length still caps replies.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
: "${TRAIN_FILE:?set TRAIN_FILE to the verl train parquet written by r1track data build}"
: "${VAL_FILE:?set VAL_FILE to the verl val parquet written by r1track data build}"
MODE="${MODE:-no-think}"
SHAPING="${SHAPING:-r1track}"
MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-VL-3B-Instruct}"
N_GPUS="${N_GPUS:-1}"
LIMIT_IMAGES="${LIMIT_IMAGES:-2}"
EXPERIMENT_NAME="${EXPERIMENT_NAME:-qwen2_5_vl_3b_r1track_grpo_verl_${MODE}}"
case "$MODE" in
  no-think) MAX_RESPONSE_LENGTH=64 ;;   # a bare box is ~15 tokens
  think) MAX_RESPONSE_LENGTH=512 ;;     # room to think, as R1-Track
  *) echo "error: MODE must be no-think or think, got '$MODE'" >&2; exit 2 ;;
esac

for f in "$TRAIN_FILE" "$VAL_FILE"; do
  [[ -f "$f" ]] || { echo "error: $f not found" >&2; exit 2; }
done
"$PYTHON" -c "import r1track.integrations.verl" || { echo "error: r1track is not installed for $PYTHON (pip install -e <r1track checkout>)" >&2; exit 2; }

args=(
  algorithm.adv_estimator=grpo
  data.train_files="$TRAIN_FILE"
  data.val_files="$VAL_FILE"
  data.train_batch_size=128
  data.max_prompt_length=1024
  data.max_response_length="$MAX_RESPONSE_LENGTH"
  data.filter_overlong_prompts=True
  data.truncation=error
  data.image_key=images
  actor_rollout_ref.model.path="$MODEL_PATH"
  actor_rollout_ref.model.use_remove_padding=True
  actor_rollout_ref.model.enable_gradient_checkpointing=True
  actor_rollout_ref.actor.optim.lr=1e-6
  actor_rollout_ref.actor.ppo_mini_batch_size=64
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8
  actor_rollout_ref.actor.use_kl_loss=True
  actor_rollout_ref.actor.kl_loss_coef=0.01
  actor_rollout_ref.actor.kl_loss_type=low_var_kl
  actor_rollout_ref.actor.entropy_coeff=0
  actor_rollout_ref.rollout.name=vllm
  # GRPO group size.
  actor_rollout_ref.rollout.n=8
  # One vLLM replica per GPU: a 3B model needs no tensor parallelism.
  actor_rollout_ref.rollout.tensor_model_parallel_size=1
  actor_rollout_ref.rollout.gpu_memory_utilization=0.6
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16
  # Images per prompt vLLM accepts (limit_mm_per_prompt): 2 for pairs, 3 for memory-frame data. Not in verl's
  # base schema for the actor's rollout, hence the "+".
  +actor_rollout_ref.rollout.limit_images="$LIMIT_IMAGES"
  actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16
  algorithm.use_kl_in_reward=False
  # The reward: r1track's entry point, imported from the installed package by verl's loader.
  reward.custom_reward_function.path=pkg://r1track.integrations.verl
  reward.custom_reward_function.name=compute_score
  # Reward options (r1track.integrations.reward_kwargs); "+" because reward_kwargs is not in verl's schema.
  +reward.custom_reward_function.reward_kwargs.mode="$MODE"
  +reward.custom_reward_function.reward_kwargs.shaping="$SHAPING"
  trainer.logger='["console"]'
  trainer.project_name=r1track
  trainer.experiment_name="$EXPERIMENT_NAME"
  trainer.n_gpus_per_node="$N_GPUS"
  trainer.nnodes=1
  trainer.save_freq=20
  trainer.test_freq=5
  trainer.total_epochs=5
  "$@"
)

if [[ -n "${R1TRACK_DRY_RUN:-}" ]]; then
  printf '%s\n' "${args[@]}"
  exit 0
fi
exec "$PYTHON" -m verl.trainer.main_ppo "${args[@]}"
