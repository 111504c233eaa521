"""Detect and avoid onnxruntime-genai's LM-head collision.

The model builder walks the PyTorch modules and takes *any* `nn.Linear` whose `out_features` equals the
vocabulary size for the LM head (`has_lm_head` in its base builder). It also splits fused projections
into Linears of its own (Phi-3's `gate_up_proj` -> `gate_proj`/`up_proj` of the MLP width, `qkv_proj`
-> q/k/v). When one of those widths equals the vocabulary, a second "LM head" is written over the real
one and every logit is wrong (off by 0.5-4 on tiny models) while the export itself succeeds.

phitune's choice: when every collision is the MLP width, widen the MLP by zero rows/columns before the
builder sees it. gate/up rows of zeros make the `up` branch exactly 0 for the new units, so
`act(gate) * up = 0` and the zero columns of `down_proj` add exactly 0: the function is unchanged
(bit for bit in the logits), the exported vocabulary is unchanged, and parity still verifies it.
Padding the vocabulary instead would leave extra tokens with logit 0 that greedy search can pick, and
the attention width cannot be padded without changing RMSNorm, so any other collision is refused with
an `ExportError` (the plain `torch.onnx` graph has no such problem).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from phitune.errors import ExportError, Problem

PAD_STEP = 64


@dataclass(frozen=True)
class Collision:
    module: str  # the module name, or "NAME (split)" for a projection the builder splits
    out_features: int
    mlp_width: bool  # fixable by widening the MLP

    def as_dict(self) -> dict:
        return asdict(self)


def find_collisions(model) -> list[Collision]:
    """Every Linear (or builder-split part of one) other than the LM head whose width is the vocabulary."""
    import torch

    config = model.config
    vocab = int(config.vocab_size)
    head = model.get_output_embeddings()
    heads, kv_heads = _attention_heads(config)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    found: list[Collision] = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if module.out_features == vocab:
            found.append(Collision(name, vocab, _is_mlp_part(name)))
        if leaf == "gate_up_proj" and module.out_features // 2 == vocab:
            found.append(Collision(f"{name} (split into gate_proj/up_proj)", vocab, True))
        if leaf == "qkv_proj" and vocab in (heads * head_dim, kv_heads * head_dim):
            found.append(Collision(f"{name} (split into q/k/v)", vocab, False))
    return found


def check_collisions(model) -> tuple[list[Collision], int | None]:
    """(collisions, padded MLP width or None). Raises ExportError when padding cannot avoid them."""
    found = find_collisions(model)
    if not found:
        return found, None
    unfixable = [c for c in found if not c.mlp_width]
    if unfixable:
        raise ExportError(
            "onnxruntime-genai's builder would take another layer for the LM head",
            [Problem(c.module, f"out_features {c.out_features} equals the vocabulary size; the builder takes any "
                               f"Linear of that width for the LM head and writes wrong logits",
                     "resize the token embeddings (model.resize_token_embeddings(vocab + 64)) before training, "
                     "or use the plain torch.onnx graph") for c in unfixable],
        )
    vocab = int(model.config.vocab_size)
    width = int(model.config.intermediate_size)
    padded = width + PAD_STEP
    while padded == vocab or 2 * padded == vocab:
        padded += PAD_STEP
    return found, padded


def pad_mlp_state_dict(state: dict, width: int, padded: int) -> dict:
    """Widen every MLP from `width` to `padded` units with zeros: exact for Phi-3 (fused gate_up_proj)
    and Llama-style (gate_proj/up_proj/down_proj) MLPs, for model weights and for PEFT LoRA weights."""
    import torch

    extra = padded - width
    out = {}
    for key, value in state.items():
        if ".mlp." not in key:
            out[key] = value
            continue
        if ("gate_up_proj.weight" in key or "gate_up_proj.bias" in key or "gate_up_proj.lora_B." in key) \
                and value.shape[0] == 2 * width:
            gate, up = value.split(width, dim=0)
            pad = value.new_zeros((extra, *value.shape[1:]))
            out[key] = torch.cat([gate, pad, up, pad], dim=0)
        elif any(f"{p}.weight" in key or f"{p}.bias" in key or f"{p}.lora_B." in key for p in ("gate_proj", "up_proj")) \
                and value.shape[0] == width:
            out[key] = torch.cat([value, value.new_zeros((extra, *value.shape[1:]))], dim=0)
        elif ("down_proj.weight" in key or "down_proj.lora_A." in key) and value.shape[-1] == width:
            out[key] = torch.cat([value, value.new_zeros((*value.shape[:-1], extra))], dim=-1)
        else:
            out[key] = value
    return out


def padded_model(model, padded: int):
    """A copy of `model` whose MLPs are `padded` wide (same logits)."""
    import copy

    config = copy.deepcopy(model.config)
    width = int(config.intermediate_size)
    config.intermediate_size = padded
    wide = type(model)(config)
    wide.load_state_dict(pad_mlp_state_dict(model.state_dict(), width, padded), strict=True)
    wide.generation_config = copy.deepcopy(model.generation_config)
    return wide.eval()


def _attention_heads(config) -> tuple[int, int]:
    heads = int(config.num_attention_heads)
    return heads, int(getattr(config, "num_key_value_heads", None) or heads)


def _is_mlp_part(name: str) -> bool:
    return ".mlp." in name and name.rsplit(".", 1)[-1] in ("gate_proj", "up_proj", "gate_up_proj")
