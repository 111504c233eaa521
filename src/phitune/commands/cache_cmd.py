"""`phitune cache list|clear`: the tokenized-data cache (`$PHITUNE_CACHE/data/`, default
`~/.cache/phitune/data/`). Each entry is one data file tokenized under one fingerprint (content,
task, tokenizer, chat template, max_seq_len); training and `data check` build and reuse them.
"""

from __future__ import annotations

import datetime


def register(sub) -> None:
    p = sub.add_parser("cache", help="list or clear the tokenized-data cache")
    csub = p.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", required=True)
    ls = csub.add_parser("list", help="list cached tokenized data files", description="List cached tokenized data "
                         "files: key, size on disk, records and examples, the source file, when built.")
    ls.set_defaults(handler=run_list)
    clear = csub.add_parser("clear", help="delete cached tokenized data (all, or the KEYs given)",
                            description="Delete cached tokenized data. A file being tokenized right now is left alone.")
    clear.add_argument("keys", nargs="*", metavar="KEY", help="entries to delete (default: all)")
    clear.set_defaults(handler=run_clear)


def run_list(args) -> int:
    from phitune.data.cache import data_cache_dir, list_entries

    entries = list_entries()
    print(f"data cache: {data_cache_dir()}")
    if not entries:
        print("(empty)")
        return 0
    print(f"{'KEY':<20}  {'SIZE':>9}  {'RECORDS':>8}  {'EXAMPLES':>8}  {'BUILT':<16}  SOURCE")
    for e in entries:
        built = datetime.datetime.fromtimestamp(e.created).strftime("%Y-%m-%d %H:%M")
        print(f"{e.key:<20}  {_size(e.size_bytes):>9}  {e.records:>8}  {e.examples:>8}  {built:<16}  {e.source}")
    total = sum(e.size_bytes for e in entries)
    print(f"{len(entries)} entr{'ies' if len(entries) != 1 else 'y'}, {_size(total)}")
    return 0


def run_clear(args) -> int:
    from phitune.data.cache import clear_entries, list_entries
    from phitune.errors import Problem, RecipeError

    if args.keys:
        known = {e.key for e in list_entries()}
        unknown = [k for k in args.keys if k not in known]
        if unknown:
            raise RecipeError("no such cache entry", [Problem(k, "not in the data cache", "see `phitune cache list`")
                                                      for k in unknown])
    removed = clear_entries(args.keys or None)
    print(f"removed {len(removed)} cached data file{'s' if len(removed) != 1 else ''}")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
