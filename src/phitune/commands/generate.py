"""`phitune generate RUN_DIR_OR_MODEL --prompt "..."`: one chat reply, printed to stdout.

Greedy by default (the same answer every time); `--temperature T` samples, reproducibly with `--seed`.
`phitune serve` follows OpenAI's API instead and samples at temperature 1 unless a request says
`"temperature": 0`, so the same prompt can differ between the two unless both are greedy."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("generate", help="a chat reply from a run or model folder (a classifier-head run: the label with probabilities, or the tagged entities)")
    p.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a run folder from `phitune train`, or a model folder")
    p.add_argument("--prompt", required=True, help="the user message")
    p.add_argument("--system", default=None, help="an optional system message")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate at most (default 64)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="0 = greedy, the same reply every time (default); above 0 samples (1 = OpenAI's and "
                        "`phitune serve`'s default); at most 2")
    p.add_argument("--seed", type=int, default=None, help="with --temperature: the sampling seed, for a repeatable reply")
    p.add_argument("--onnx", action="store_true",
                   help="MODEL is an export from `phitune export --onnx`: stream the reply with onnxruntime-genai")
    p.add_argument("--adapter", default=None, help="with --onnx and a multi-LoRA export: the adapter to use ('base' = none)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from phitune.errors import Problem, RecipeError

    if args.max_new_tokens < 1:
        raise RecipeError("invalid option", [Problem("--max-new-tokens", "must be at least 1")])
    if not 0 <= args.temperature <= 2:  # also refuses nan
        raise RecipeError("invalid option", [Problem("--temperature", f"{args.temperature:g} is not in 0..2",
                                                     "0 for greedy, 0.7-1 for varied replies")])
    if args.adapter and not args.onnx:
        raise RecipeError("invalid option", [Problem("--adapter", "only applies to ONNX exports", "add --onnx")])
    if args.onnx:
        from phitune.export.generate_onnx import generate_onnx

        generate_onnx(args.model, args.prompt, system=args.system, max_new_tokens=args.max_new_tokens, adapter=args.adapter,
                      temperature=args.temperature, seed=args.seed)
        return 0
    from phitune.evaluate.generation import chat_prompt_ids, generate
    from phitune.models.run_dir import load_for_inference

    from phitune.status import status

    status(f"loading the model: {args.model}")
    model, tokenizer = load_for_inference(args.model)
    from phitune.models.heads import is_head_model

    if is_head_model(model):  # a classifier-head run: it has no text to generate, it labels
        print(_head_answer(args.model, model, tokenizer, args.prompt))
        return 0
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.prompt}]
    if not tokenizer.chat_template:
        from phitune.errors import ModelError

        raise ModelError(f"{args.model} has no chat template", [Problem(args.model, "the tokenizer has no chat_template",
                         "use a run of a chat recipe, or an instruct model")])
    reply = generate(model, tokenizer, [chat_prompt_ids(tokenizer, messages)], args.max_new_tokens,
                     temperature=args.temperature, seed=args.seed)[0]
    print(reply)
    return 0


def _head_answer(path: str, model, tokenizer, text: str) -> str:
    from phitune.errors import ModelError, Problem
    from phitune.evaluate.heads import answer_with_head
    from phitune.models.run_dir import is_run_dir, run_recipe

    if not is_run_dir(path):
        raise ModelError(f"{path} is a classifier-head model without its recipe", [Problem(
            path, "the task (its label keys and prompt) is in a run folder's resolved_recipe.json",
            "pass the run folder written by `phitune train`")])
    return answer_with_head(model, tokenizer, run_recipe(path).task, text)
