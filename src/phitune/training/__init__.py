"""The training core: `phitune.train(recipe, output_dir) -> RunResult` (defined in training/run.py and
exported by the `phitune` package). Never imports azure."""
