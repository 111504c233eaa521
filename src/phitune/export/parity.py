"""Parity: does the ONNX model give the same answers as PyTorch?

For each fixed prompt, PyTorch (eager, KV cache) generates greedily; its full forward over prompt +
generation is the reference. Then:
- logits: the ONNX model is fed the same tokens (genai: prompt at once, then one token at a time through
  its KV cache, exactly as in generation) and every position's logits are compared (max/mean abs diff);
- tokens: the ONNX model generates greedily on its own and is compared token for token.
fp32 must hold (logits within `atol`, every sequence identical, same prompt token ids): "passed" or
"failed". int8/int4 are "not comparable": 4-bit weights legitimately change logits and near-tied
choices, so agreement and logit error are reported for information. Every check carries its
`verdict`, `why` and `conclusion` in plain words (`verdict()`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np  # light; torch and onnxruntime stay inside functions


@dataclass
class Reference:
    prompt: str
    prompt_ids: list[int]
    tokens: list[int]  # greedy continuation, ends with EOS if one was generated
    logits: np.ndarray  # (len(prompt_ids) + len(tokens) - 1, vocab)


def pytorch_references(model, tokenizer, prompts, max_new_tokens: int, eos: list[int]) -> list[Reference]:
    import torch
    from transformers import GenerationConfig

    from phitune.export.layout import chat_messages

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              eos_token_id=list(eos), pad_token_id=pad, use_cache=True)
    refs = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template(chat_messages(prompt), add_generation_prompt=True, tokenize=True,
                                            return_dict=True)["input_ids"]
        ids = [int(t) for t in ids]
        with torch.no_grad():
            x = torch.tensor([ids])
            out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=config)
            tokens = [int(t) for t in out[0, len(ids):]]
            full = torch.tensor([ids + tokens[:-1]])
            logits = model(input_ids=full, use_cache=False).logits[0].float().numpy()
        refs.append(Reference(prompt, ids, tokens, logits))
    return refs


def compare_genai(chat_model, refs: list[Reference], max_new_tokens: int, adapter: str | None, enforce: bool,
                  atol: float) -> dict:
    per_prompt = []
    for ref in refs:
        runtime_ids = chat_model.prompt_ids([{"role": "user", "content": ref.prompt}])
        logits = chat_model.teacher_forced_logits(ref.prompt_ids, ref.tokens, adapter=adapter)
        tokens = chat_model.greedy_tokens(ref.prompt_ids, max_new_tokens, adapter=adapter)
        per_prompt.append({"prompt": ref.prompt, "tokenizer_match": runtime_ids == ref.prompt_ids,
                           **_logit_error(logits, ref.logits), **_agreement(ref.tokens, tokens)})
    return _summary(per_prompt, enforce, atol)


def compare_logits_graph(session, refs: list[Reference], atol: float) -> dict:
    from phitune.export.torch_graph import run_logits

    per_prompt = []
    for ref in refs:
        logits = run_logits(session, ref.prompt_ids + ref.tokens[:-1])[0]
        per_prompt.append({"prompt": ref.prompt, **_logit_error(logits, ref.logits)})
    return _summary(per_prompt, enforce=True, atol=atol)


def failures(section: dict, label: str) -> list[str]:
    """Human-readable reasons an enforced section failed (empty when it passed or is report-only)."""
    if not section.get("enforced") or section.get("passed"):
        return []
    reasons = []
    if section["max_abs_diff"] > section["atol"]:
        reasons.append(f"{label}: logits max abs diff {section['max_abs_diff']:.3g} > {section['atol']:g}")
    if section.get("sequences_identical") is not None and section["sequences_identical"] < section["prompts"]:
        reasons.append(f"{label}: greedy tokens differ on {section['prompts'] - section['sequences_identical']} "
                       f"of {section['prompts']} prompts (agreement {section['token_agreement']:.3f})")
    if section.get("tokenizer_match") is False:
        reasons.append(f"{label}: the ONNX tokenizer gives different prompt token ids than Hugging Face")
    return reasons


def _logit_error(got: np.ndarray, want: np.ndarray) -> dict:
    if got.shape != want.shape:
        return {"max_abs_diff": float("inf"), "mean_abs_diff": float("inf"), "shape": [list(got.shape), list(want.shape)]}
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}


def _agreement(want: list[int], got: list[int]) -> dict:
    matched = sum(a == b for a, b in zip(want, got))
    first = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), None)
    if first is None and len(want) != len(got):
        first = min(len(want), len(got))
    return {"reference_tokens": want, "onnx_tokens": got, "identical": want == got,
            "token_agreement": matched / max(1, len(want), len(got)), "first_divergence": first}


def _summary(per_prompt: list[dict], enforce: bool, atol: float) -> dict:
    summary = {
        "prompts": len(per_prompt),
        "atol": atol,
        "enforced": enforce,
        "max_abs_diff": max(p["max_abs_diff"] for p in per_prompt),
        "mean_abs_diff": float(np.mean([p["mean_abs_diff"] for p in per_prompt])),
    }
    passed = summary["max_abs_diff"] <= atol
    if "identical" in per_prompt[0]:
        summary["sequences_identical"] = sum(p["identical"] for p in per_prompt)
        summary["token_agreement"] = float(np.mean([p["token_agreement"] for p in per_prompt]))
        summary["tokenizer_match"] = all(p["tokenizer_match"] for p in per_prompt)
        passed = passed and summary["sequences_identical"] == len(per_prompt) and summary["tokenizer_match"]
    summary["within_tolerance"] = bool(passed)
    summary["passed"] = bool(passed) if enforce else None  # int8/int4: reported, not judged
    summary["per_prompt"] = per_prompt
    summary.update(verdict(summary))
    return summary


VERDICTS = ("passed", "failed", "not comparable")


def verdict(section: dict) -> dict:
    """What a parity check means, in words: `verdict` (passed / failed / not comparable), `why`, and
    `conclusion` (what the user should do with the export)."""
    agree = ""
    if section.get("token_agreement") is not None:
        agree = (f"; greedy tokens identical on {section['sequences_identical']}/{section['prompts']} prompts "
                 f"({section['token_agreement']:.0%} of tokens agree)")
    diff = f"logits max|diff| {section['max_abs_diff']:.2e}"
    if not section.get("enforced"):
        return {"verdict": "not comparable",
                "why": f"quantized weights change the logits by design, so no tolerance applies ({diff}{agree})",
                "conclusion": "the export works; judge its answers on your own data (e.g. phitune generate --onnx), "
                              "or export fp32 for answers identical to PyTorch"}
    if section.get("passed"):
        return {"verdict": "passed", "why": f"{diff} <= {section['atol']:g}{agree}",
                "conclusion": "the ONNX model gives the same answers as the PyTorch model"}
    return {"verdict": "failed", "why": "; ".join(failures(section, "this check")) or f"{diff} > {section['atol']:g}",
            "conclusion": "do not use this export: it does not reproduce the PyTorch model (see export_report.json)"}
