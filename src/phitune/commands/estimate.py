"""`phitune estimate RECIPE`: per-device memory of training the recipe, whether it fits, the largest
micro-batch that does, and what to change when it does not."""

from __future__ import annotations

import re

from phitune.commands.common import add_set_option, load_recipe_from_args

_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kKmMbBtT]?)\s*$")
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def register(sub) -> None:
    p = sub.add_parser("estimate", help="estimate per-device training memory and whether it fits")
    p.add_argument("recipe", help="recipe YAML (or resolved JSON)")
    add_set_option(p)
    p.add_argument("--gpu-memory", type=float, default=None, metavar="GB",
                   help="memory per GPU in GB (1e9 bytes; an '80GB' A100 has 85.9). Default: this machine's RAM, CPU training")
    p.add_argument("--gpus", type=int, default=1, help="GPUs (processes) per node (default 1)")
    p.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    p.add_argument("--params", default=None, metavar="N",
                   help="parameter count, e.g. 3.8B, when the model config cannot be read (hub ids offline)")
    p.add_argument("--overhead", type=float, default=None, metavar="GB",
                   help="framework/runtime memory per process (default 0.46 on CPU, 1.0 on GPU)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.set_defaults(handler=run)


def run(args) -> int:
    import json

    from phitune.errors import ModelError, Problem
    from phitune.estimate.advice import suggestions
    from phitune.estimate.memory import Hardware, estimate, fits, max_micro_batch
    from phitune.estimate.report import as_dict, render

    for flag in ("gpus", "nodes"):
        if getattr(args, flag) < 1:
            raise ModelError("invalid hardware", [Problem(f"--{flag}", "must be a positive integer")])
    if args.gpu_memory is not None and args.gpu_memory <= 0:
        raise ModelError("invalid hardware", [Problem("--gpu-memory", "must be a positive number of GB")])
    params = parse_count(args.params) if args.params else None
    from phitune.lazy_imports import skip_bitsandbytes

    skip_bitsandbytes()  # shapes are counted on a meta-device model: nothing is quantized here
    recipe = load_recipe_from_args(args)
    hardware = _hardware(args)

    shapes: dict = {}  # the shape depends on model and method only; suggestions reuse it

    def shape_for(r):
        key = (r.model.model_dump_json(), r.method.model_dump_json())
        if key not in shapes:
            shapes[key] = _shape(r, params)
        return shapes[key]

    shape = shape_for(recipe)
    est = estimate(recipe, shape, hardware)
    ok = fits(est, hardware)
    best = max_micro_batch(recipe, shape, hardware, est)
    advice = [] if ok else suggestions(recipe, hardware, est, shape_for)
    if args.json:
        print(json.dumps(as_dict(recipe, shape, hardware, est, ok, best, advice), indent=2))
    else:
        print(render(recipe, shape, hardware, est, ok, best, advice, args.recipe))
    return 0


def parse_count(text: str) -> int:
    from phitune.errors import ModelError, Problem

    match = _COUNT.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ModelError("invalid parameter count", [Problem("--params", f"cannot read {text!r}",
                                                             "write it like 3.8B, 800M or 7500000000")])
    return int(float(match.group(1)) * _SCALE[match.group(2).lower()])


def _hardware(args):
    from phitune.estimate.memory import Hardware

    overhead = args.overhead * 1e9 if args.overhead is not None else None
    if args.gpu_memory is not None:
        return Hardware("gpu", args.gpu_memory * 1e9, args.gpus, args.nodes, overhead)
    import psutil

    return Hardware("cpu", float(psutil.virtual_memory().total), args.gpus, args.nodes, overhead)


def _shape(recipe, params: int | None):
    """The model's shape from its config; `--params` replaces the count (or stands in for a missing config)."""
    import dataclasses

    from phitune.errors import ModelError
    from phitune.estimate.shapes import ModelShape, model_shape

    try:
        shape = model_shape(recipe)
    except ModelError:
        if params is None:
            raise
        return ModelShape.from_params(recipe.model.name, params, recipe)
    if params is None:
        return shape
    ratio = params / shape.total_params
    return dataclasses.replace(shape, total_params=params, quantizable_params=int(shape.quantizable_params * ratio),
                               trainable_params=params if recipe.method.trains_all_weights else shape.trainable_params)
