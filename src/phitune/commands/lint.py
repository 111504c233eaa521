"""`phitune lint [PATHS...] [--format text|json]`: Azure ML YAMLs checked against azure-ai-ml's own
schemas, plus what the SDK accepts offline but Azure rejects or silently drops."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "lint", help="check Azure ML job / component / environment / compute / asset YAMLs",
        description="Check Azure ML YAMLs (every job type, components, environments, compute, models, data) "
                    "against azure-ai-ml's own schemas (unknown keys, types, enums), and for what the SDK accepts "
                    "offline but Azure rejects or drops: bindings naming nothing, literals outside a component "
                    "input's min/max/enum, unknown node inputs, optional inputs outside $[[...]], missing files. "
                    "Exit 0 if clean, 2 with FILE:LINE: key for each problem (or for a path holding no Azure ML YAML).")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="files or folders (default: components environments aml)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: one object with `checked` files and `problems` (file, line, yaml_key, message, fix) "
                        "for editors and CI; exit codes as for text (default: %(default)s)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from phitune.errors import LintError
    from phitune.lint import DEFAULT_PATHS, lint_paths

    checked, problems = lint_paths(args.paths or DEFAULT_PATHS)
    if args.format == "json":
        import json

        print(json.dumps({"checked": {str(path): kind for path, kind in checked.items()},
                          "problems": [_as_json(p) for p in problems]}, indent=2))
        return 2 if problems else 0
    if problems:
        raise LintError(f"lint found problems in {len({p.location.split(':')[0] for p in problems})} file(s)", problems)
    kinds = sorted(set(checked.values()))
    print(f"ok: {len(checked)} Azure ML YAML file(s) clean ({', '.join(kinds)})")
    return 0


def _as_json(problem) -> dict:
    """`FILE:LINE: key` split into fields (a path-level problem has no line or key). The YAML key is
    `yaml_key`: printed output is redacted, and a JSON field named "key" reads as a secret to it."""
    where, _, key = problem.location.partition(": ")
    file, _, line = where.rpartition(":")
    if not line.isdigit():
        file, line = where, ""
    return {"file": file, "line": int(line) if line else None, "yaml_key": key or None,
            "message": problem.message, "fix": problem.fix}
