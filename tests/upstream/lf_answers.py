"""Greedy answers of a checkpoint to the prompts of a LLaMA-Factory ShareGPT set, rendered by LLaMA-Factory itself
(run INSIDE the llamafactory venv; used by test_closed_loop.py)::

    python tests/upstream/lf_answers.py MODEL_DIR TEMPLATE DATASET_DIR RECORDS.json OUT.json

Each record's user turn (with its ``<image>`` placeholders) and images are rendered by LLaMA-Factory's own
inference path (``llamafactory/chat/hf_engine.py``, ``HuggingfaceEngine._process_args``): the same
``template.encode_oneturn`` and multimodal plugin that built the training sequences; then transformers' ``generate``
with ``do_sample=False``. So the answers are the model's on its training prompts exactly as it was trained on them,
independent of the checkpoint's chat template (which the serving engines use instead).

One input is added: ``mm_token_type_ids`` (1 on image tokens). LLaMA-Factory 0.9.5's training collator passes it to
the model's ``get_rope_index`` (``data/collator.py``), but its inference engine does not put it in the ``generate``
arguments, and transformers 5.6's Qwen2.5-VL / Qwen3-VL then place the image tokens' M-RoPE positions as if they were
text: ``llamafactory-cli chat`` (huggingface backend) answers wrongly what the model answers rightly everywhere else.
OUT.json: ``{"answers": [...], "seconds": ...}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    model, template, dataset_dir, records_file, out = sys.argv[1:6]
    import torch
    from llamafactory.chat import ChatModel
    from PIL import Image

    t0 = time.perf_counter()
    chat = ChatModel({"model_name_or_path": model, "template": template, "infer_backend": "huggingface",
                      "trust_remote_code": False, "image_max_pixels": 262144, "image_min_pixels": 1024,
                      "infer_dtype": "float32"})
    engine = chat.engine
    image_token = engine.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    answers = []
    for record in json.loads(Path(records_file).read_text()):
        images = [Image.open(Path(dataset_dir) / p).convert("RGB") for p in record["images"]]
        messages = [{"role": "user", "content": record["messages"][0]["content"]}]
        gen_kwargs, prompt_length = engine._process_args(
            engine.model, engine.tokenizer, engine.processor, engine.template, engine.generating_args, messages, None,
            None, images, None, None, {"do_sample": False, "max_new_tokens": 32})
        gen_kwargs["mm_token_type_ids"] = (gen_kwargs["inputs"] == image_token).long()
        with torch.no_grad():
            generated = engine.model.generate(**gen_kwargs)
        answers.append(engine.tokenizer.decode(generated[0, prompt_length:], skip_special_tokens=True))
    Path(out).write_text(json.dumps({"answers": answers, "seconds": round(time.perf_counter() - t0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
