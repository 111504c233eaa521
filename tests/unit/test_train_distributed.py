"""How a global batch plan is split between ranks, and what a launched rank runs."""

from __future__ import annotations

import argparse

from phitune.data import plan_batches
from phitune.distributed.world import RankBatch, launched_by_torchrun, shard_list, shard_plan, world_from_env
from phitune.distributed.launcher import child_argv, should_launch


def test_ranks_get_disjoint_slices_that_cover_the_plan_and_have_the_same_length():
    plan = plan_batches([10 + i % 7 for i in range(37)], 4, seed=1, epoch=0, group_by_length=True, packing=False,
                        max_seq_len=64)  # 10 batches, the last one short
    shards = [shard_plan(plan, rank, 3) for rank in range(3)]
    assert {len(s) for s in shards} == {4}  # ceil(10 / 3): the same number of steps on every rank
    real = [i for s in shards for rb in s if not rb.dummy for i in rb.indices]
    assert sorted(real) == list(range(37))  # every example once, on exactly one rank
    # global micro-batch j is plan entries 3j, 3j+1, 3j+2
    assert [shards[r][1].indices for r in range(3)] == plan[3:6]
    # the last group has one entry: the other ranks run a dummy (a real example, no loss)
    assert shards[0][3] == RankBatch(plan[9]) and shards[1][3].dummy and shards[2][3].dummy
    assert shards[1][3].indices == plan[9][:1]


def test_one_rank_sees_the_single_process_plan():
    plan = [[3, 1], [0, 2]]
    assert shard_plan(plan, 0, 1) == [RankBatch([3, 1]), RankBatch([0, 2])]


def test_eval_batches_are_split_round_robin_and_padded_to_the_longest_share():
    assert shard_list(list("abcde"), 0, 2) == (["a", "c", "e"], 0)
    assert shard_list(list("abcde"), 1, 2) == (["b", "d"], 1)


def test_world_comes_from_torchrun_variables():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    world = world_from_env(env)
    assert (world.rank, world.size, world.local_rank, world.is_main) == (3, 4, 1, False)
    assert world_from_env({}).is_main and world_from_env({}).size == 1
    assert launched_by_torchrun(env) and not launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "1"})


def test_ranks_rerun_the_same_command(monkeypatch):
    args = argparse.Namespace(recipe="r.yaml", overrides=["train.lr=1e-3", "method.r=4"], resume=True, no_progress=True,
                              verbose=False, nproc=2)
    assert child_argv(args, "runs/x") == ["train", "r.yaml", "--output", "runs/x", "--nproc", "2", "--set", "train.lr=1e-3",
                                          "--set", "method.r=4", "--resume", "--no-progress"]
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert should_launch(2) and not should_launch(1) and not should_launch(None)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not should_launch(2)  # already a rank: train, do not launch again


def test_prepare_env_says_what_it_added_and_leaves_the_callers_variables(monkeypatch):
    """process_group() removes exactly these when the run ends: a later `--nproc` launch from the same
    process must not think it is a rank."""
    import os

    from phitune.distributed.world import ENV_VARS, prepare_env

    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "/somewhere/of/the/users")
    added = prepare_env()
    try:
        assert set(ENV_VARS) <= set(added) and "TORCH_EXTENSIONS_DIR" not in added
        assert os.environ["TORCH_EXTENSIONS_DIR"] == "/somewhere/of/the/users"
        assert os.environ["WORLD_SIZE"] == "1" and int(os.environ["MASTER_PORT"]) > 0
    finally:
        for name in added:  # not monkeypatch.delenv: it would put prepare_env's values back at teardown
            os.environ.pop(name, None)
    monkeypatch.setenv("RANK", "1")
    assert not set(ENV_VARS) & set(prepare_env())  # launched: the launcher's rendezvous is kept as it is


def test_a_process_group_is_left_as_it_was_found():
    """Joined and left by one run when there was none; a group the caller set up before stays set up.
    In a child process: a process group is process-wide state."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os
        os.environ["DS_ACCELERATOR"] = "cpu"
        import torch.distributed as td
        from phitune.distributed.world import free_port, process_group

        with process_group() as world:
            assert td.is_initialized() and world.size == 1 and os.environ["WORLD_SIZE"] == "1"
        assert not td.is_initialized() and "WORLD_SIZE" not in os.environ

        td.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
        with process_group():
            pass
        assert td.is_initialized(), "the caller's process group was destroyed"
        print("ok")
    """)
    import os

    from phitune.distributed.world import ENV_VARS

    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}  # not launched: no rank variables
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
