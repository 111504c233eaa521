"""CLI subcommands, one module each. Module level imports only argparse and stdlib: heavy work
is imported inside the handler."""
