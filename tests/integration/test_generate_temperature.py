"""`phitune generate --temperature`: greedy by default (the same reply every time), sampled above 0,
repeatable with --seed (issue: serve samples by default while generate was greedy-only)."""

from __future__ import annotations

import pytest

from phitune.cli import main

PROMPT = ["--prompt", "Describe the sea.", "--max-new-tokens", "12"]


def reply(capsys, model_dir, *extra: str) -> str:
    assert main(["generate", str(model_dir), *PROMPT, *extra]) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_generate_is_greedy_by_default_and_samples_with_a_temperature(tiny_model_dir, capsys):
    greedy = reply(capsys, tiny_model_dir)
    assert greedy == reply(capsys, tiny_model_dir, "--temperature", "0")
    sampled = reply(capsys, tiny_model_dir, "--temperature", "1", "--seed", "3")
    assert sampled == reply(capsys, tiny_model_dir, "--temperature", "1", "--seed", "3")
    assert sampled != greedy  # a random tiny model: sampling from its flat distribution leaves the greedy path


@pytest.mark.parametrize("value", ["-0.5", "2.5", "nan"])
def test_generate_refuses_a_temperature_outside_0_to_2(tiny_model_dir, capsys, value):
    assert main(["generate", str(tiny_model_dir), *PROMPT, "--temperature", value]) == 2
    assert "--temperature" in capsys.readouterr().err
