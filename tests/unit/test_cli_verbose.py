"""`cli.main` configures the process before parsing (so nothing is printed unredacted or unquieted):
its reading of --verbose must agree with argparse's for every spelling argparse accepts."""

import pytest

from phitune.cli import asks_for_verbose, build_parser


@pytest.mark.parametrize("argv", [
    ["train", "r.yaml"], ["train", "r.yaml", "-v"], ["train", "r.yaml", "--verbose"], ["train", "r.yaml", "--verb"],
    ["train", "r.yaml", "--ve"], ["train", "r.yaml", "-vo", "out"], ["train", "r.yaml", "-o", "out"],
    ["train", "r.yaml", "--output", "out"], ["eval", "run", "--data", "d.jsonl", "--verbo"],
    ["eval", "run", "--data", "d.jsonl"], ["tiny-model", "out", "--vocab", "512"],
])
def test_verbose_is_read_as_argparse_reads_it(argv):
    args = build_parser().parse_args(argv)
    assert asks_for_verbose(argv) == bool(getattr(args, "verbose", False))
