"""Vision attention of the ``transformers`` engine: one batched attention call per vision layer.

Why: in transformers 5.x the vision towers of Qwen2.5-VL, Qwen3-VL and Qwen3.5 take the packed patches of every
image of a batch as one sequence plus ``cu_seqlens`` (the cumulative lengths of the attention segments: one per
window in Qwen2.5-VL's window layers, one per image in its full-attention layers and in every Qwen3-VL /
Qwen3.5 layer). Unless a ``flash_attention`` implementation is requested, the attention module splits the packed
sequence at those boundaries and runs one attention call per segment: a batch of 64 two-image requests at
336 px is 128 images x 9 windows = 1,152 calls in each of Qwen2.5-VL-3B's 28 window layers. r1track's crops in a
batch mostly share one size, so the segments mostly share one length, and a layer's attention is one dense,
batched call.

The dense path also computes the patch embedding (a ``Conv3d`` whose kernel equals its stride, so each patch row
meets the kernel once) as one matrix product of the patch rows with the flattened kernel: the same sums, without
the convolution kernels' overhead (on CPU the convolution was the largest single cost of the tiny models' vision
tower).

Modes (``vision_attention``):

* ``auto`` (default): ``flash_attention_2`` for the vision tower when the ``flash_attn`` package imports, the
  model is on CUDA in half precision (one variable-length call per layer, transformers' own path); else the
  dense path below on a verified transformers version (:data:`VERIFIED_TRANSFORMERS`) and attention class
  (:data:`DENSE_ATTENTION_CLASSES`); else the stock attention, with a warning saying why.
* ``dense``: the dense path even on an unverified transformers version (the load-time self-check still runs).
* ``stock``: transformers' own attention, untouched.

The dense path replaces the ``forward`` of each vision attention module (the instance attribute; the class is
untouched). It computes what the stock forward computes -- ``qkv`` projection split into (3, heads, head_dim),
the module's rotary function on queries and keys, scaled dot-product attention inside each segment, ``proj`` --
but groups the segments by length: segments of one length are one ``scaled_dot_product_attention`` call on a
(segments, heads, length, head_dim) batch (a view when every segment has that length, an index gather
otherwise), so any grid is handled: equal windows, ragged edge windows, images of several sizes. Segment plans
are computed once per ``cu_seqlens`` tensor (the same tensor object serves every layer of one kind in a forward
pass), so the per-layer host synchronisation of the stock path is gone too.

Facts relied on (read in transformers 5.6.0, 5.10.4, 5.17.0 and 5.19.0,
``models/qwen2_5_vl/modeling_qwen2_5_vl.py``, ``models/qwen3_vl/modeling_qwen3_vl.py``,
``models/qwen3_5/modeling_qwen3_5.py``): the patch embeddings ``Qwen2_5_VisionPatchEmbed``,
``Qwen3VLVisionPatchEmbed``, ``Qwen3_5VisionPatchEmbed`` view their input as (-1, channels, temporal, patch,
patch), cast it to ``proj.weight.dtype``, apply ``proj`` (Conv3d, kernel = stride = (temporal, patch, patch)) and
view the result as (-1, embed_dim); the classes ``Qwen2_5_VLVisionAttention``, ``Qwen3VLVisionAttention``
and ``Qwen3_5VisionAttention`` have ``qkv`` (Linear, dim -> 3 dim, laid out as (3, heads, head_dim)), ``proj``,
``num_heads``, ``scaling`` (head_dim ** -0.5); their module defines ``apply_rotary_pos_emb_vision(q, k, cos,
sin)`` on (tokens, heads, head_dim) tensors; the vision blocks call the attention with the hidden states
positionally and ``cu_seqlens`` and ``position_embeddings`` = (cos, sin) as keywords (5.6 also passes an unused
``rotary_pos_emb``, 5.17+ a ``max_seqlen``); the non-flash path runs the attention interface with no mask, not
causal, dropout 0 in eval, on each ``cu_seqlens`` segment. ``PreTrainedModel.set_attn_implementation`` accepts
``{"vision_config": name}`` to change only the vision tower's implementation.

Verified: the slow test ``tests/test_hf_engine.py`` runs ``tests/upstream/hf_engine_probe.py`` in one virtual
environment per version of :data:`VERIFIED_TRANSFORMERS` on the tiny random models of every family: the dense
vision output equals the stock one (float32, max abs difference <= 1e-5) on equal windows, ragged windows and
mixed image sizes, and greedy replies of the engine are identical with and without it.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any

from ..redact import get_logger

__all__ = [
    "VISION_ATTENTION_MODES",
    "VERIFIED_TRANSFORMERS",
    "DENSE_ATTENTION_CLASSES",
    "VisionAttentionChoice",
    "setup_vision_attention",
    "install_dense_attention",
    "remove_dense_attention",
    "vision_tower",
    "transformers_minor",
]

log = get_logger(__name__)

VISION_ATTENTION_MODES = ("auto", "dense", "stock")

VERIFIED_TRANSFORMERS = ("5.6", "5.17", "5.19")
"""transformers releases (major.minor) whose vision attention the dense path was verified against (module
docstring): 5.17 is the GPU machine's release, 5.6 and 5.19 the LLaMA-Factory and vLLM test environments'. (The
verl environment's 5.10 has no torchvision, without which transformers 5.x cannot build a Qwen-VL processor, so
the engine cannot run there and 5.10 is not verified.)"""

DENSE_ATTENTION_CLASSES = ("Qwen2_5_VLVisionAttention", "Qwen3VLVisionAttention", "Qwen3_5VisionAttention")
"""Vision attention classes the dense path knows (the r1track families Qwen2.5-VL, Qwen3-VL, Qwen3.5)."""

PATCH_EMBED_CLASSES = ("Qwen2_5_VisionPatchEmbed", "Qwen3VLVisionPatchEmbed", "Qwen3_5VisionPatchEmbed")
"""Patch embedding classes computed as one matrix product by the dense path."""

_STOCK = "_r1track_stock_forward"


@dataclass(frozen=True)
class VisionAttentionChoice:
    """What the engine's vision tower runs: ``implementation`` is ``flash_attention_2``, ``dense`` or ``stock``;
    ``reason`` says why (shown in the engine report); ``modules``: attention modules patched (dense)."""

    implementation: str
    reason: str
    modules: int = 0

    def describe(self) -> str:
        return f"{self.implementation} ({self.reason})"


def transformers_minor(version: str) -> str:
    """``"5.17"`` for ``"5.17.0"`` / ``"5.17.0.dev0"``."""
    parts = version.split(".")
    return ".".join(parts[:2])


def vision_tower(model: Any) -> Any | None:
    """The vision tower of a Qwen-VL conditional-generation model (``model.model.visual`` in transformers 5,
    ``model.visual`` before), or None."""
    inner = getattr(model, "model", None)
    for holder in (inner, model):
        tower = getattr(holder, "visual", None) if holder is not None else None
        if tower is not None and hasattr(tower, "blocks"):
            return tower
    return None


def _attention_modules(tower: Any) -> list[Any]:
    return [blk.attn for blk in getattr(tower, "blocks", []) if hasattr(blk, "attn")]


class _SegmentPlans:
    """Per ``cu_seqlens`` tensor: how its segments group by length. Holds the last few tensors by identity (a
    vision forward uses one or two: windows and full images)."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self.entries: list[tuple[Any, Any]] = []

    def get(self, cu_seqlens: Any) -> Any:
        for tensor, plan in self.entries:
            if tensor is cu_seqlens:
                return plan
        plan = _plan(cu_seqlens)
        self.entries = [(cu_seqlens, plan), *self.entries[: self.keep - 1]]
        return plan


def _plan(cu_seqlens: Any) -> tuple[int, list[tuple[int, Any]]]:
    """(L, []) when every segment is L tokens long; else (0, [(L, index (segments, L)), ...]) per length."""
    import torch

    bounds = cu_seqlens.tolist()
    lengths = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
    nonzero = [n for n in lengths if n > 0]
    if nonzero and len(set(nonzero)) == 1 and len(nonzero) == len(lengths):
        return nonzero[0], []
    groups: dict[int, list[int]] = {}
    for start, n in zip(bounds[:-1], lengths):
        if n > 0:
            groups.setdefault(n, []).append(start)
    device = cu_seqlens.device
    out = []
    for n, starts in sorted(groups.items()):
        index = torch.tensor(starts, device=device, dtype=torch.long)[:, None] + torch.arange(n, device=device)
        out.append((n, index))
    return 0, out


def _dense_forward(attn: Any, rotary: Any, plans: _SegmentPlans, hidden_states: Any, cu_seqlens: Any = None,
                   *args: Any, position_embeddings: Any = None, **kwargs: Any) -> Any:
    """The dense replacement of one vision attention module's forward (see the module docstring)."""
    import torch.nn.functional as F

    if args or position_embeddings is None or cu_seqlens is None or attn.training:
        return getattr(attn, _STOCK)(hidden_states, cu_seqlens, *args, position_embeddings=position_embeddings, **kwargs)
    tokens = hidden_states.shape[0]
    heads = attn.num_heads
    q, k, v = attn.qkv(hidden_states).view(tokens, 3, heads, -1).unbind(1)  # each (tokens, heads, head_dim)
    cos, sin = position_embeddings
    q, k = rotary(q, k, cos, sin)
    length, groups = plans.get(cu_seqlens)
    if length:
        def seg(t: Any) -> Any:
            return t.view(tokens // length, length, heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(seg(q), seg(k), seg(v), scale=attn.scaling)
        out = out.transpose(1, 2).reshape(tokens, -1)
    else:
        out = v.new_empty(v.shape)
        for _, index in groups:
            o = F.scaled_dot_product_attention(q[index].transpose(1, 2), k[index].transpose(1, 2),
                                               v[index].transpose(1, 2), scale=attn.scaling)
            out[index] = o.transpose(1, 2)
        out = out.reshape(tokens, -1)
    return attn.proj(out)


def _patch_embed_forward(embed: Any, hidden_states: Any) -> Any:
    """The patch embedding as one matrix product (module docstring)."""
    import torch.nn.functional as F

    weight = embed.proj.weight
    rows = hidden_states.reshape(-1, weight[0].numel()).to(weight.dtype)
    return F.linear(rows, weight.reshape(weight.shape[0], -1), embed.proj.bias)


def _check_patch_embed(embed: Any) -> None:
    cls = type(embed).__name__
    if cls not in PATCH_EMBED_CLASSES:
        raise ValueError(f"patch embedding class {cls} is not one the dense path knows")
    proj = getattr(embed, "proj", None)
    if type(proj).__name__ != "Conv3d" or tuple(proj.kernel_size) != tuple(proj.stride) or any(proj.padding) or \
            any(d != 1 for d in proj.dilation) or proj.groups != 1 or proj.padding_mode != "zeros":
        raise ValueError(f"{cls}.proj is not a Conv3d with kernel = stride and no padding")


def install_dense_attention(model: Any) -> int:
    """Patch every known vision attention module of ``model`` and its patch embedding (see the module
    docstring); returns how many attention modules. Raises ValueError when the tower or a module is not of a
    known shape (nothing is patched then)."""
    tower = vision_tower(model)
    if tower is None:
        raise ValueError("no vision tower (model.model.visual) found")
    embed = getattr(tower, "patch_embed", None)
    if embed is None:
        raise ValueError("the vision tower has no patch_embed")
    _check_patch_embed(embed)
    modules = _attention_modules(tower)
    if not modules:
        raise ValueError("the vision tower has no attention blocks")
    rotaries = []
    for attn in modules:
        cls = type(attn).__name__
        if cls not in DENSE_ATTENTION_CLASSES:
            raise ValueError(f"vision attention class {cls} is not one the dense path knows "
                             f"({', '.join(DENSE_ATTENTION_CLASSES)})")
        rotary = getattr(sys.modules.get(type(attn).__module__), "apply_rotary_pos_emb_vision", None)
        missing = [a for a in ("qkv", "proj", "num_heads", "scaling") if not hasattr(attn, a)]
        if rotary is None or missing:
            raise ValueError(f"{cls} lacks {', '.join(missing) or 'apply_rotary_pos_emb_vision'}")
        if attn.qkv.out_features != 3 * attn.qkv.in_features or attn.qkv.in_features % attn.num_heads:
            raise ValueError(f"{cls}: unexpected qkv shape {attn.qkv.in_features} -> {attn.qkv.out_features}")
        rotaries.append(rotary)
    plans = _SegmentPlans()
    if _STOCK not in embed.__dict__:
        setattr(embed, _STOCK, embed.forward)
    embed.forward = types.MethodType(_patch_embed_forward, embed)
    for attn, rotary in zip(modules, rotaries):
        if _STOCK not in attn.__dict__:
            setattr(attn, _STOCK, attn.forward)
        attn.forward = types.MethodType(
            lambda self, *a, _r=rotary, **kw: _dense_forward(self, _r, plans, *a, **kw), attn)
    return len(modules)


def remove_dense_attention(model: Any) -> None:
    """Undo :func:`install_dense_attention` (the stock forwards again)."""
    tower = vision_tower(model)
    if tower is None:
        return
    for module in [*_attention_modules(tower), getattr(tower, "patch_embed", None)]:
        if module is not None and module.__dict__.pop(_STOCK, None) is not None:
            module.__dict__.pop("forward", None)


def _self_check(model: Any) -> str | None:
    """Run the patch embedding and the first patched attention module stock and dense on a small random input
    with equal and ragged segments; None when they agree (tolerance by dtype), else what differed."""
    import torch

    tower = vision_tower(model)
    attn = _attention_modules(tower)[0]
    param = attn.qkv.weight
    gen = torch.Generator(device="cpu").manual_seed(0)
    embed = tower.patch_embed
    rows = torch.rand(6, embed.proj.weight[0].numel(), generator=gen).to(param.device)
    with torch.inference_mode():
        ref = getattr(embed, _STOCK)(rows).float()
        diff = (ref - embed(rows).float()).abs().max().item()
    if diff > (1e-5 if param.dtype == torch.float32 else 2e-2) * max(1.0, ref.abs().max().item()):
        return f"self-check: the patch embedding as a matrix product differs by {diff:.3g}"
    head_dim = attn.qkv.in_features // attn.num_heads
    tokens = 16 + 16 + 8
    hidden = torch.randn(tokens, attn.qkv.in_features, generator=gen).to(param.device, param.dtype)
    angles = torch.rand(tokens, head_dim // 2, generator=gen) * 6.283
    angles = torch.cat([angles, angles], dim=-1).to(param.device)
    pos = (angles.cos(), angles.sin())
    ok = True
    worst = 0.0
    with torch.inference_mode():
        for bounds in ([0, 16, 32], [0, 16, 32, 40]):
            cu = torch.tensor(bounds, dtype=torch.int32, device=param.device)
            n = bounds[-1]
            ref = getattr(attn, _STOCK)(hidden[:n], cu_seqlens=cu, position_embeddings=(pos[0][:n], pos[1][:n]))
            got = attn(hidden[:n], cu_seqlens=cu, position_embeddings=(pos[0][:n], pos[1][:n]))
            diff = (ref.float() - got.float()).abs().max().item()
            scale = max(1.0, ref.float().abs().max().item())
            tol = (1e-5 if param.dtype == torch.float32 else 2e-2) * scale
            worst = max(worst, diff)
            ok &= diff <= tol
    return None if ok else f"self-check: dense and stock attention differ by {worst:.3g}"


def setup_vision_attention(model: Any, mode: str = "auto") -> VisionAttentionChoice:
    """Choose and install the vision attention of a loaded model (module docstring); never raises for a model
    it cannot speed up: the choice says ``stock`` and why (also logged as a warning when ``mode`` asked for
    more)."""
    import torch
    import transformers

    if mode not in VISION_ATTENTION_MODES:
        raise ValueError(f"vision_attention must be one of {', '.join(VISION_ATTENTION_MODES)}, got {mode!r}")
    if mode == "stock":
        return VisionAttentionChoice("stock", "--vision-attention stock")
    tower = vision_tower(model)
    if tower is None:
        return _stock(f"no vision tower found in {type(model).__name__}")
    device = next(tower.parameters()).device
    dtype = next(tower.parameters()).dtype
    if mode == "auto" and device.type == "cuda" and dtype in (torch.float16, torch.bfloat16) and _flash_importable():
        try:
            model.set_attn_implementation({"vision_config": "flash_attention_2"})
        except Exception as exc:  # noqa: BLE001 - any failure leaves the dense path as the fallback
            log.warning("flash_attention_2 for the vision tower failed (%s: %s); trying the dense path",
                        type(exc).__name__, exc)
        else:
            return VisionAttentionChoice("flash_attention_2", "flash_attn importable, CUDA, half precision")
    impl = getattr(getattr(tower, "config", None), "_attn_implementation", None)
    if impl and "flash" in str(impl):
        return VisionAttentionChoice(str(impl), "the checkpoint's own attention implementation")
    version = transformers_minor(transformers.__version__)
    if mode == "auto" and version not in VERIFIED_TRANSFORMERS:
        return _stock(f"transformers {transformers.__version__} is not one the dense path was verified on "
                      f"({', '.join(VERIFIED_TRANSFORMERS)}); --vision-attention dense uses it anyway")
    try:
        n = install_dense_attention(model)
    except ValueError as exc:
        return _stock(str(exc))
    problem = _self_check(model)
    if problem is not None:
        remove_dense_attention(model)
        return _stock(problem)
    verified = "verified" if version in VERIFIED_TRANSFORMERS else "NOT verified, forced"
    return VisionAttentionChoice("dense", f"one batched attention call per layer; transformers "
                                          f"{transformers.__version__} {verified}", n)


def _stock(reason: str) -> VisionAttentionChoice:
    log.warning("vision attention: transformers' stock path (one attention call per window or image): %s", reason)
    return VisionAttentionChoice("stock", reason)


def _flash_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None
