"""`phitune tiny-model OUT_DIR`: build the offline tiny Phi-3 and its BPE tokenizer."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("tiny-model", help="build a tiny Phi-3-architecture model + BPE tokenizer offline")
    p.add_argument("out_dir", help="folder to write config.json, model.safetensors and the tokenizer to")
    p.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
    p.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    p.add_argument("--heads", type=int, default=None, help="attention heads (default max(4, hidden/128))")
    p.add_argument("--vocab", type=int, default=2048, help="BPE vocabulary size, padded to a multiple of 64 (default 2048)")
    p.add_argument("--intermediate", type=int, default=None, help="MLP width (default 4 x hidden)")
    p.add_argument("--seed", type=int, default=0, help="weight-initialisation seed (default 0); same seed, same bytes")
    p.set_defaults(handler=run)


def run(args) -> int:
    from phitune.errors import ModelError, Problem
    from phitune.models.tiny import TinySpec, build_tiny_model

    for flag in ("hidden", "layers", "vocab"):
        if getattr(args, flag) < 1:
            raise ModelError("invalid tiny model shape", [Problem(f"--{flag}", "must be a positive integer")])
    heads = args.heads or max(4, args.hidden // 128)
    spec = TinySpec(hidden=args.hidden, layers=args.layers, heads=heads, vocab=args.vocab,
                    intermediate=args.intermediate, seed=args.seed)
    path = build_tiny_model(args.out_dir, spec)
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path)
    n = _count_params(cfg)
    print(f"built {path}: Phi-3 hidden={cfg.hidden_size} layers={cfg.num_hidden_layers} heads={cfg.num_attention_heads} "
          f"intermediate={cfg.intermediate_size} vocab={cfg.vocab_size} (~{n / 1e6:.2f} M params)")
    return 0


def _count_params(cfg) -> int:
    h, i, v, n = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_hidden_layers
    per_layer = 4 * h * h + 3 * h * i + 2 * h
    return 2 * v * h + n * per_layer + h
