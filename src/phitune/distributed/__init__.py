"""Multi-process training: who is who and the collectives (world.py), the `--nproc` launcher
(launcher.py), and DeepSpeed: its config built from the recipe (ds_config.py) and its engine and
checkpoints (deepspeed_engine.py)."""
