"""`--verbose` / `-v`: also show the libraries' own logs, warnings and progress bars.

Keeping library chatter out of phitune's output is process-wide state: it lives in phitune.process
(`configure_process`, called by `phitune.cli.main` before any command runs); `quiet_libraries` is
re-exported here for scripts that import it from this module.
"""

from __future__ import annotations

from phitune.process import gpu_visible, quiet_libraries, verbose_requested  # noqa: F401  (re-exported)


def add_verbose_option(parser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also show the libraries' own logs, warnings and progress bars")
