"""The EasyR1 installer: the reward function (``examples/reward_function/``), the format prompts
(``examples/format_prompt/``) and the launch scripts (``examples/r1track/``)."""

from __future__ import annotations

from .plan import FileMap, TargetSpec

__all__ = ["SPEC"]

SPEC = TargetSpec(
    name="easyr1",
    title="EasyR1",
    markers=("verl", "examples/config.yaml"),
    files=(
        FileMap("plugins/easyr1/reward_function", "examples/reward_function"),
        FileMap("plugins/easyr1/format_prompt", "examples/format_prompt"),
        FileMap("plugins/easyr1/examples", "examples/r1track"),
    ),
)
