"""Run inside the verl virtual environment (PyPI verl 0.9.x) by tests/upstream/test_verl_reward.py.

verl's own code does everything: Hydra composes ``ppo_trainer.yaml`` with the overrides of our launch script
(so every key must exist in verl's schema), ``get_custom_reward_fn`` / ``load_reward_manager`` load
``pkg://r1track.integrations.verl``, and the registered reward manager (``naive``) decodes each response with
a toy character tokenizer and scores it in ``run_single``; ``assemble_rm_scores`` places the rewards.

Input: a JSON file (argv[1]) ``{"runs": [{"overrides": [...], "cases": [{"reply", "ground_truth"}]}]}``.
Output: one JSON line on stdout, ``{"runs": [{"manager": ..., "fn": ..., "results": [...], "rm_scores": [...]}]}``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
from hydra import compose, initialize_config_dir

import verl
from verl import DataProto
from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager

PAD = 0


class CharTokenizer:
    """Token i = the character chr(i); 0 is padding (a special token)."""

    pad_token_id = PAD
    eos_token_id = PAD

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return "".join(chr(i) for i in ids if not (skip_special_tokens and i == PAD))


def make_batch(tokenizer: CharTokenizer, cases: list[dict]) -> DataProto:
    prompt_len = 8
    encoded = [tokenizer.encode(c["reply"]) for c in cases]
    resp_len = max(len(e) for e in encoded) + 3
    prompts = torch.full((len(cases), prompt_len), ord("p"), dtype=torch.long)
    responses = torch.full((len(cases), resp_len), PAD, dtype=torch.long)
    mask = torch.zeros((len(cases), prompt_len + resp_len), dtype=torch.long)
    mask[:, :prompt_len] = 1
    for i, ids in enumerate(encoded):
        responses[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[i, prompt_len : prompt_len + len(ids)] = 1
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": mask},
        non_tensors={
            "data_source": np.array(["r1track"] * len(cases), dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": c["ground_truth"]} for c in cases], dtype=object),
            "extra_info": np.array([{"index": i} for i in range(len(cases))], dtype=object),
        },
    )


def unknown_key_rejected(config_dir: str, overrides: list[str]) -> bool:
    """Hydra's struct mode must refuse a key that is not in verl's schema (so composing really checks ours)."""
    try:
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            compose(config_name="ppo_trainer", overrides=[*overrides, "reward.custom_reward_function.pathh=x"])
    except Exception:
        return True
    return False


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    tokenizer = CharTokenizer()
    out = []
    for run in spec["runs"]:
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            config = compose(config_name="ppo_trainer", overrides=run["overrides"])
        fn = get_custom_reward_fn(config)
        manager = load_reward_manager(config, tokenizer)
        data = make_batch(tokenizer, run["cases"])
        results = []
        for i in range(len(data)):
            r = manager.loop.run_until_complete(manager.run_single(data[i : i + 1]))
            results.append({"reward_score": r["reward_score"], "reward_extra_info": r["reward_extra_info"]})
        rm_scores = type(manager).assemble_rm_scores(data, [r["reward_score"] for r in results])
        direct = fn(data_source="r1track", solution_str=run["cases"][0]["reply"],
                    ground_truth=run["cases"][0]["ground_truth"], extra_info={})
        out.append({
            "manager": f"{type(manager).__module__}.{type(manager).__name__}",
            "fn": getattr(getattr(fn, "args", [None, None])[0], "__module__", None),
            "fn_name": getattr(getattr(fn, "args", [None, None])[0], "__name__", None),
            "direct": direct,
            "results": results,
            "rm_scores": rm_scores.tolist(),
            "limit_images": config.actor_rollout_ref.rollout.get("limit_images"),
            "reward_kwargs": dict(config.reward.custom_reward_function.get("reward_kwargs", {})),
            "unknown_key_rejected": unknown_key_rejected(config_dir, run["overrides"]),
        })
    print(json.dumps({"verl": verl.__version__, "runs": out}))


if __name__ == "__main__":
    main()
