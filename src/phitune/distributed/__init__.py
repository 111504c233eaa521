"""Multi-process training: the DeepSpeed config built from the recipe (ds_config.py). The launcher
(`phitune train --nproc N`) lives beside it."""
