"""`phitune lint [PATHS...]`: Azure ML YAML problems azure-ai-ml accepts offline but Azure rejects or drops."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "lint", help="check Azure ML component / pipeline / job / environment YAMLs (what Azure rejects or drops)",
        description="Check Azure ML YAMLs for what azure-ai-ml accepts offline but Azure rejects or silently drops: "
                    "bindings naming nothing, defaults outside min/max or enum, unknown inputs and keys, optional "
                    "inputs outside $[[...]]. Exit 0 if clean, 2 with FILE:LINE: key for each problem.")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="files or folders (default: components environments aml)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from phitune.errors import LintError
    from phitune.lint import DEFAULT_PATHS, lint_paths

    checked, problems = lint_paths(args.paths or DEFAULT_PATHS)
    if problems:
        raise LintError(f"lint found problems in {len({p.location.split(':')[0] for p in problems})} file(s)", problems)
    kinds = sorted({kind for kind in checked.values()})
    print(f"ok: {len(checked)} Azure ML YAML file(s) clean ({', '.join(kinds) or 'none found'})")
    return 0
