"""Multi-process primitives, below training (they never import phitune.training): who is who, the
process group and the collectives (world.py), the `--nproc` launcher (launcher.py), and DeepSpeed:
its config built from the recipe (ds_config.py) and its engine, engine files and weight gather
(deepspeed_engine.py). A training run uses them through phitune.training.deepspeed_backend."""
