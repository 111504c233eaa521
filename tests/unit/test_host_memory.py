"""phitune.host_memory: what each allocator policy does with freed tensor memory, observed as RSS in a
fresh process (mallopt settings are process-wide, so never in the test process), and which policy a
model trains under."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from phitune.recipe.load import load_recipe

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc and /proc")

# Like a training step: 48 tensors of 2 MB (96 MB) interleaved with small ones that stay alive (so a
# heap cannot shrink past them), the 2 MB ones freed; reports the RSS growth (MB) that remains. One
# 2 MB block freed first, as in any earlier step: glibc's default then raises its mmap threshold past 2 MB.
_PROBE = textwrap.dedent("""
    import json, sys, psutil, torch
    from phitune import host_memory as hm
    rss = lambda: psutil.Process().memory_info().rss
    kept = []
    def retained():
        base = rss()
        blocks = []
        for _ in range(48):
            blocks.append(torch.ones(512 * 1024))
            kept.append(torch.ones(4096))
        del blocks
        return (rss() - base) / 2**20
    warm = torch.ones(512 * 1024); del warm
    out = {}
    if sys.argv[1] == "default":
        out["after"] = retained()
    elif sys.argv[1] == "return":
        out["returned"] = hm.return_freed_memory_to_os()
        out["after"] = retained()
    elif sys.argv[1] == "scoped":
        with hm.freed_memory_returned() as returned:
            out["returned"], out["inside"] = returned, retained()
    else:
        before = rss()
        with hm.keep_freed_memory() as tuned:
            out["tuned"], out["inside"] = tuned, retained()
        out["after_exit"] = (rss() - before) / 2**20
    print(json.dumps(out))
""")


def _probe(policy: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE, policy], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@linux_only
def test_return_policy_gives_freed_blocks_back_to_the_os():
    out = _probe("return")
    assert out["returned"] is True
    assert out["after"] < 24, out  # of 96 MB freed, (almost) nothing stays resident
    assert _probe("default")["after"] > 72  # what glibc's default does instead (why the policy exists)


@linux_only
def test_return_policy_can_be_held_for_a_run_only():
    out = _probe("scoped")
    assert out["returned"] is True and out["inside"] < 24, out


def test_loading_a_model_leaves_the_allocator_alone(tiny_model_dir):
    """The policy is the training run's to choose (phitune.train), not a side effect of loading."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        from unittest import mock
        from phitune import host_memory as hm
        from phitune.models.build import load_trainable_model
        from phitune.recipe.load import load_recipe
        with mock.patch.object(hm, "return_freed_memory_to_os", side_effect=AssertionError("allocator changed")):
            load_trainable_model(load_recipe({"data": {"train": "t"}, "method": {"type": "lora"}, "tracking": "none"}))
        print("ok")
    """)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


@linux_only
def test_keep_policy_holds_freed_blocks_until_it_ends():
    out = _probe("keep")
    assert out["tuned"] is True
    assert out["inside"] > 72, out  # the next step reuses these pages instead of faulting them in again
    assert out["after_exit"] < 24, out  # leaving the policy trims the heap


def test_a_quantized_base_trains_under_the_return_policy(tiny_model_dir):
    from phitune.host_memory import is_quantized
    from phitune.models.build import load_trainable_model

    qlora = load_trainable_model(load_recipe({"data": {"train": "t"}, "method": {"type": "qlora"}, "tracking": "none"}))
    lora = load_trainable_model(load_recipe({"data": {"train": "t"}, "method": {"type": "lora"}, "tracking": "none"}))
    assert is_quantized(qlora) and not is_quantized(lora)
