"""`--verbose` / `-v`: also show the libraries' own logs, warnings and progress bars.

Keeping library chatter out of phitune's output is process-wide state: it lives in phitune.process
(`configure_process`, called by `phitune.cli.main` before any command runs).
"""

from __future__ import annotations


def add_verbose_option(parser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also show the libraries' own logs, warnings and progress bars")
