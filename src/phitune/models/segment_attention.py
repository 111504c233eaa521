"""Attention for padding-free rows without attending across examples or paying for it.

A padding-free row holds several examples back to back, with position ids restarting at 0 for each
(`phitune.data.collate(packing=True)`). transformers' SDPA path keeps them apart with a dense
block-diagonal mask over the whole row, so attention costs (sum of lengths)² per head. Flash
attention's varlen kernels run each example separately, but they need CUDA. This implementation
("phitune_segments") does the same with PyTorch's SDPA on any device: one causal attention per
example, cost sum(length²). Everything else (padded batches, generation with a KV cache, one
example per row) goes to transformers' own SDPA function unchanged.

With it, a padding-free row stays one row: models/loss.py `packed_rows` (which otherwise re-lays long
rows out as several shorter ones to bound the dense mask's cost) leaves it alone. Models whose
config sets a sliding window (Phi-3-mini: 2047) fall back to the masked path for an example longer
than the window.
"""

from __future__ import annotations

from phitune.compat import attention_implementation
from phitune.models import base_of

NAME = "phitune_segments"
_registered = False


def use_segment_attention(model) -> bool:
    """Switch `model` from SDPA to per-example attention for padding-free rows; True if switched.
    Models on another implementation (eager, flash attention) are left as they are. Training chooses
    it once, when the model is loaded (phitune.training.run.choose_attention); the collator only
    reads the choice (`attends_per_example`)."""
    register()
    base = base_of(model)
    if attention_implementation(getattr(base, "config", None)) != "sdpa":
        return False
    base.set_attn_implementation(NAME)
    return True


def attends_per_example(model) -> bool:
    """Whether `model` (a PEFT model, an HF model, or anything with `get_base_model`) uses this
    implementation, so a padding-free row can stay one row (models/loss.py `packed_rows`)."""
    return attention_implementation(getattr(base_of(model), "config", None)) == NAME


def register() -> None:
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, segment_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # padded batches and generation still get their mask
    _registered = True


def segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                      is_causal=None, **kwargs):
    """transformers attention-interface function: query [1, heads, T, d], key/value [1, kv_heads, T, d]."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    bounds = _segments(kwargs.get("position_ids"), query, key)
    window = kwargs.get("sliding_window")
    if bounds is not None and window is not None and max(b - a for a, b in bounds) > window:
        bounds = None  # an example longer than the window: the masked path applies the window for us
    if bounds is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    parts = [F.scaled_dot_product_attention(query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], dropout_p=dropout,
                                            is_causal=True, scale=scaling) for a, b in bounds]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous(), None


def _segments(position_ids, query, key) -> list[tuple[int, int]] | None:
    """[(start, end)] of the examples in a padding-free row, or None when this is not one: a row of
    several examples, no KV cache (query and key equally long), position ids restarting at 0."""
    if position_ids is None or query.shape[0] != 1 or query.shape[2] != key.shape[2] or query.shape[2] < 2:
        return None
    positions = position_ids.reshape(-1)
    if positions.numel() != query.shape[2]:
        return None
    starts = (positions == 0).nonzero().flatten().tolist()
    if len(starts) < 2 or starts[0] != 0:
        return None
    return list(zip(starts, starts[1:] + [positions.numel()]))
