"""Training-core pieces on their own: lr schedule, exact gradient accumulation, the masked-logits loss,
checkpoint round trips, secret redaction and the metric registry."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from phitune.evaluate.metrics import compute_metrics, is_correct, metric_names, perplexity, register_metric
from phitune.recipe.sections import TrainSpec
from phitune.redact import redact, redact_params
from phitune.tracking import NullTracker, Tracker
from phitune.training import checkpoint as ckpt
from phitune.models.loss import count_targets, token_loss_sum
from phitune.training.schedule import lr_factor, make_scheduler, total_steps, warmup_steps


def test_lr_schedule_warms_up_then_decays_to_zero():
    assert [lr_factor(s, 10, 2, "cosine") for s in (0, 1)] == [0.5, 1.0]
    assert lr_factor(2, 10, 2, "cosine") == pytest.approx(1.0)
    assert lr_factor(6, 10, 2, "cosine") == pytest.approx(0.5)
    assert lr_factor(10, 10, 2, "cosine") == pytest.approx(0.0)
    assert lr_factor(6, 10, 2, "linear") == pytest.approx(0.5)
    assert lr_factor(9, 10, 0, "constant") == 1.0
    spec = TrainSpec(warmup_ratio=0.25)
    assert warmup_steps(spec, 10) == 3
    assert warmup_steps(TrainSpec(warmup_steps=50), 10) == 10


def test_total_steps_counts_partial_accumulation_windows():
    assert total_steps(TrainSpec(epochs=2, grad_accum=2), micro_batches_per_epoch=5) == 6
    assert total_steps(TrainSpec(epochs=0.5), micro_batches_per_epoch=5) == 3
    assert total_steps(TrainSpec(max_steps=7, epochs=100), micro_batches_per_epoch=5) == 7


@pytest.fixture(scope="module")
def tiny():
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    cfg = Phi3Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=4, num_key_value_heads=4, pad_token_id=0, rope_scaling=None)
    return Phi3ForCausalLM(cfg).eval()


def _batch(rows: list[tuple[list[int], list[int]]]) -> dict:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


ROWS = [
    ([5, 6, 7, 8, 9], [-100, -100, 7, 8, 9]),
    ([10, 11, 12], [-100, 11, 12]),
    ([13, 14, 15, 16, 17, 18, 19], [-100, -100, -100, -100, 17, 18, 19]),
    ([20, 21, 22, 23], [-100, -100, -100, 23]),
]


def test_masked_logits_loss_equals_full_cross_entropy(tiny):
    batch = _batch(ROWS)
    loss, n = token_loss_sum(tiny, batch)
    logits = tiny(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 96), batch["labels"][:, 1:].reshape(-1),
                                            ignore_index=-100, reduction="sum")
    assert n == count_targets(batch) == 9
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_gradient_accumulation_equals_one_big_batch(tiny):
    """Sum of token losses / label tokens of the whole window: micro-batches of unequal label counts
    give the same gradient as one batch (a per-micro-batch mean would not)."""
    def grads(windows):
        tiny.zero_grad()
        batches = [_batch(w) for w in windows]
        total = sum(count_targets(b) for b in batches)
        for b in batches:
            loss, _ = token_loss_sum(tiny, b)
            (loss / total).backward()
        return [p.grad.clone() for p in tiny.parameters() if p.grad is not None]

    one = grads([ROWS])
    accumulated = grads([ROWS[:1], ROWS[1:]])
    for a, b in zip(one, accumulated):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_checkpoint_round_trip_restores_weights_optimizer_scheduler_and_rng(tiny, tmp_path):
    params = [p for p in tiny.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3)
    sched = make_scheduler(opt, TrainSpec(warmup_steps=2), 10)
    loss, n = token_loss_sum(tiny, _batch(ROWS))
    (loss / n).backward()
    opt.step()
    sched.step()
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    rng = ckpt.capture_rng()
    expected_draws = (random.random(), np.random.rand(), torch.rand(1).item())
    path = ckpt.save_checkpoint(tmp_path, 1, tiny, opt, sched, {"global_step": 1}, rng)
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    opt_state = opt.state_dict()["state"][0]["exp_avg"].clone()

    with torch.no_grad():
        for p in params:
            p.add_(1.0)
    opt2 = torch.optim.AdamW(params, lr=1e-3)
    sched2 = make_scheduler(opt2, TrainSpec(warmup_steps=2), 10)
    state, rng2 = ckpt.load_checkpoint(path, tiny, opt2, sched2)
    assert state == {"global_step": 1}
    for k, v in tiny.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt_state)
    assert sched2.last_epoch == 1 and opt2.param_groups[0]["lr"] == pytest.approx(1e-3)
    ckpt.restore_rng(rng2)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected_draws
    assert ckpt.latest_checkpoint(tmp_path) == path


def test_secrets_never_reach_tracking():
    params = redact_params({"train.lr": "0.001", "target.sas_token": "abc", "data.train": "https://x/y?sv=1&sig=zzz",
                            "eval.max_new_tokens": "8", "target.api_key": "k"})
    assert params["train.lr"] == "0.001" and params["eval.max_new_tokens"] == "8"
    assert params["target.sas_token"] == params["target.api_key"] == "REDACTED"
    assert params["data.train"] == "https://x/y?sv=1&sig=REDACTED"
    assert redact("https://user:pw@host:5000/path?sig=s") == "https://user:REDACTED@host:5000/path?sig=REDACTED"
    assert redact("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"
    assert isinstance(NullTracker(), Tracker)


def test_metric_registry_is_keyed_by_task_type():
    assert "exact_match" in metric_names("chat") and "exact_match" in metric_names("completion")
    assert compute_metrics("chat", [" Positive\n", "negative"], ["positive", "positive"]) == {"exact_match": 0.5}
    assert is_correct("completion", "  YES ", "yes")
    register_metric("unit-test-task", "length")(lambda p, r: {"mean_len": sum(map(len, p)) / len(p)})
    assert compute_metrics("unit-test-task", ["ab", "abcd"], ["", ""]) == {"mean_len": 3.0}
    assert perplexity(math.log(5.0)) == pytest.approx(5.0) and perplexity(None) is None


def test_cpu_threads_follow_the_user_and_are_restored(monkeypatch):
    from phitune.training.device import cpu_threads

    before = torch.get_num_threads()
    monkeypatch.setenv("PHITUNE_CPU_THREADS", "1")
    with cpu_threads(torch.device("cpu")) as threads:
        assert threads == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.delenv("PHITUNE_CPU_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))
    with cpu_threads(torch.device("cpu")) as threads:  # the user's OMP_NUM_THREADS is never overridden
        assert threads == before
