"""The built-in tiny Phi-3: a real Phi-3-architecture causal LM and a real byte-level BPE fast tokenizer
with the Phi-3 chat template, built offline and deterministically (same arguments, same bytes).

`builtin:tiny-phi3` in a recipe builds it once into the cache (`PHITUNE_CACHE`, default
`~/.cache/phitune`) and reuses it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from phitune.errors import ModelError
from phitune.local_cache import cache_root, exclusive_lock

# Phi-3's chat format. Real Phi-3 templates have no `{% generation %}` tags, so phitune's label masking
# never relies on them (see phitune.data.template).
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
BUILTIN_MODELS = {"tiny-phi3": {}}


@dataclass(frozen=True)
class TinySpec:
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    vocab: int = 2048
    intermediate: int | None = None  # default 4 x hidden
    max_positions: int = 4096
    seed: int = 0

    def resolved_intermediate(self) -> int:
        return self.intermediate or 4 * self.hidden


def padded_vocab(requested: int, intermediate: int) -> int:
    """Round the vocabulary up to a multiple of 64 and keep it different from the MLP width:
    onnxruntime-genai's builder takes any Linear with out_features == vocab_size for the LM head."""
    vocab = -(-requested // 64) * 64
    while vocab == intermediate or vocab == 2 * intermediate:
        vocab += 64
    return vocab


def build_tiny_model(out_dir: str | os.PathLike, spec: TinySpec = TinySpec(), progress: bool = False) -> Path:
    """Build model + tokenizer into `out_dir` (written atomically) and return the path."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    if spec.hidden % spec.heads:
        raise ModelError(
            "invalid tiny model shape",
            [_problem("--heads", f"hidden size {spec.hidden} is not divisible by {spec.heads} heads")],
        )
    out = Path(out_dir)
    tokenizer = _build_tokenizer(spec.vocab)
    intermediate = spec.resolved_intermediate()
    vocab = padded_vocab(len(tokenizer), intermediate)
    config = Phi3Config(
        vocab_size=vocab,
        hidden_size=spec.hidden,
        intermediate_size=intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        original_max_position_embeddings=spec.max_positions,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|pad|>"),
        tie_word_embeddings=False,
        rope_scaling=None,
    )
    # fork_rng: building the model must not reseed the caller's global RNG (training seeds after loading).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = Phi3ForCausalLM(config)
    model.generation_config.eos_token_id = [
        tokenizer.convert_tokens_to_ids("<|end|>"),
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    ]
    model.generation_config.pad_token_id = config.pad_token_id

    from phitune.files import atomic_dir
    from phitune.lazy_imports import no_deepspeed_probe

    with atomic_dir(out) as tmp:  # with the umask's modes, not mkdtemp's 0700 / safetensors' 0600
        with no_deepspeed_probe():  # saving would import DeepSpeed (and with it mlflow) for nothing
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "phitune_tiny.json").write_text(json.dumps({**asdict(spec), "vocab_size": vocab}, indent=2))
    return out


def builtin_model_path(name: str) -> Path:
    """Path of a cached built-in model (`builtin:tiny-phi3`), building it on first use."""
    key = name.removeprefix("builtin:")
    if key not in BUILTIN_MODELS:
        raise ModelError(
            f"unknown built-in model {name!r}",
            [_problem("model.name", f"no built-in model {key!r}", f"use one of: builtin:{', builtin:'.join(BUILTIN_MODELS)}")],
        )
    path = cache_dir() / "models" / key
    if not (path / "phitune_tiny.json").is_file():
        # Every rank of `phitune train --nproc N` gets here at once on a fresh cache: one builds while the
        # others wait on the lock (a rank reading while another replaced the folder saw a half model).
        with exclusive_lock(path.parent / f".{key}.lock"):
            if not (path / "phitune_tiny.json").is_file():
                build_tiny_model(path, TinySpec(**BUILTIN_MODELS[key]))
    return path


def cache_dir() -> Path:
    return cache_root()


def _build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from phitune.models.corpus import tokenizer_corpus

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = PHI3_CHAT_TEMPLATE
    fast.model_max_length = 4096
    return fast


def _problem(location: str, message: str, fix: str | None = None):
    from phitune.errors import Problem

    return Problem(location, message, fix)
