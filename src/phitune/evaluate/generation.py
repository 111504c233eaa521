"""Greedy generation for evaluation and `phitune generate` (sampled with `generate --temperature`):
batched, left-padded, stopping at Phi-3's `<|end|>` as well as the tokenizer's eos (an instruct model
ends its turn with `<|end|>`).
"""

from __future__ import annotations

from typing import Sequence


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """`<|end|>` (when the vocabulary has it), eos, and whatever the model's generation config adds."""
    ids: list[int] = []
    end = tokenizer.convert_tokens_to_ids("<|end|>") if "<|end|>" in tokenizer.get_vocab() else None
    for candidate in (end, tokenizer.eos_token_id):
        if candidate is not None and candidate not in ids:
            ids.append(candidate)
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for candidate in config_eos if isinstance(config_eos, list) else [config_eos]:
        if candidate is not None and candidate not in ids:
            ids.append(candidate)
    return ids


def chat_prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The chat template with the assistant header appended, so the model writes the reply."""
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(out["input_ids"])


def text_prompt_ids(tokenizer, text: str) -> list[int]:
    """A completion prompt, tokenized the way training tokenizes prompt + answer (the tokenizer adds
    BOS if it does; see phitune.data.template.render_text)."""
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def generate(model, tokenizer, prompts: Sequence[list[int]], max_new_tokens: int, batch_size: int = 16,
             temperature: float = 0.0, seed: int | None = None, on_batch=None) -> list[str]:
    """Continuations of tokenized prompts, decoded without special tokens and stripped: greedy at
    temperature 0 (the default), else sampled from the whole distribution (top_p 1, as OpenAI's API),
    reproducibly when `seed` is given."""
    import torch

    sampling: dict = {"do_sample": False}
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": float(temperature), "top_p": 1.0, "top_k": 0}
        if seed is not None:
            torch.manual_seed(seed)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_token_ids(tokenizer, model)
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths, less padding
    replies: dict[int, str] = {}
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                width = max(len(prompts[i]) for i in idx)
                input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):  # left padding: every prompt ends where generation starts
                    ids = prompts[i]
                    input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
                    attention[row, width - len(ids):] = 1
                out = model.generate(
                    input_ids=input_ids.to(device), attention_mask=attention.to(device), max_new_tokens=max_new_tokens,
                    **sampling, num_beams=1, eos_token_id=stops, pad_token_id=pad_id,
                )
                for row, i in enumerate(idx):
                    new = out[row, width:].tolist()
                    cut = next((k for k, t in enumerate(new) if t in stops), len(new))
                    replies[i] = tokenizer.decode(new[:cut], skip_special_tokens=True).strip()
                if on_batch is not None:  # the evaluation progress bar
                    on_batch(1)
    finally:
        model.train(was_training)
    return [replies[i] for i in range(len(prompts))]
