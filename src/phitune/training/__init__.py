"""The training core: `phitune.train(recipe, output_dir) -> RunResult` (defined in training/run.py and
exported by the `phitune` package). Never imports azure.

run.py          train(): the phases of a run (run folder, data, model, backend, loop, evaluation,
                consolidation, outputs on the main process)
backend.py      SingleProcess: what one process does differently (AdamW on the model's device)
deepspeed_backend.py  DeepSpeedBackend: the same for one rank of a DeepSpeed run
loop.py         TrainLoop: optimizer steps, held-out loss, checkpoints, callbacks, through a backend
checkpoint.py, resume.py    checkpoint files; what a resume may change and what an interrupted run says
run_folder.py, outputs.py   the run folder's lifecycle; what a finished run writes
optim.py, schedule.py, signals.py, device.py, head_loss.py   AdamW groups, lr schedule, Ctrl-C/SIGTERM,
                device and CPU threads, a classifier head's loss

Imports phitune.distributed (ranks, launcher, DeepSpeed config and engine), never the reverse."""
