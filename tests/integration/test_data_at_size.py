"""Data at size, as a user meets it: hostile or broken records are FILE:LINE errors (exit 2, no
traceback), an oversized record is skipped without being read into memory, `data check` memory stays
flat when the file grows tenfold, and `--resume` on changed data is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, run_cli  # tests/ is on sys.path (rootdir conftest, prepend import mode)

REVIEWS = EXAMPLES / "data" / "reviews-train.jsonl"
GOOD = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})


def _hostile_file(path: Path) -> Path:
    deep = "[" * 100_000 + "]" * 100_000
    lines = [
        GOOD,                                                                                   # 1
        json.dumps({"messages": [{"role": "user", "content": "x" * 3_000_000}]}),               # 2 too large
        '{"messages": [{"role": "user", "content": "half \\ud83d an emoji"}, '
        '{"role": "assistant", "content": "ok"}]}',                                             # 3 lone surrogate
        '{"messages": [], "n": ' + "9" * 5000 + "}",                                            # 4 huge integer
        '{"messages": ' + deep + "}",                                                           # 5 deep nesting
        GOOD,                                                                                   # 6
    ]
    path.write_bytes(("\n".join(lines) + "\n" + GOOD[:30]).encode())                           # 7 truncated
    return path


def test_hostile_records_are_file_line_errors(tmp_path, tiny_model_dir):
    data = _hostile_file(tmp_path / "hostile.jsonl")
    result = run_cli("data", "check", str(data), "--model", str(tiny_model_dir), "--no-progress",
                     "--set", "data.max_record_bytes=1048576")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    expected = {2: "more than data.max_record_bytes=1,048,576", 3: "lone UTF-16 surrogate (\\ud83d)",
                4: "a number Python cannot read", 5: "nested too deeply", 7: "the last line is cut off"}
    for line, phrase in expected.items():
        assert any(row.startswith(f"{data}:{line}: ") and phrase in row for row in result.stderr.splitlines()), (line, result.stderr)
    assert "7 records, 2 usable, 5 bad" in result.stdout


def test_hostile_records_stop_training_loading_with_every_location(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from phitune.data import load_examples
    from phitune.errors import DataError
    from phitune.recipe import load_recipe

    data = _hostile_file(tmp_path / "hostile.jsonl")
    recipe = load_recipe({"model": str(tiny_model_dir), "data": {"train": str(data), "max_record_bytes": 1 << 20}})
    with pytest.raises(DataError) as info:
        load_examples(recipe, AutoTokenizer.from_pretrained(tiny_model_dir))
    assert [p.location for p in info.value.problems] == [f"{data}:{n}" for n in (2, 3, 4, 5, 7)]


def test_an_oversized_record_is_skipped_without_being_read_into_memory(tmp_path):
    data = tmp_path / "huge.jsonl"
    with data.open("w") as handle:
        handle.write(GOOD + "\n" + '{"messages": "' + "x" * 200_000_000 + '"}\n' + GOOD + "\n")
    probe = (
        "import resource, sys\n"
        "from phitune.data.readers import iter_records\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"items = list(iter_records({str(data)!r}, max_record_bytes=1 << 20))\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(len(items), items[1][1].location, (after - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["3", f"{data}:2"]
    assert int(out[2]) < 32  # MB of peak memory added while reading a 200 MB record: it was never held


def _peak_rss_mb(args: list[str], env: dict) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "phitune.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    proc.stderr.close()
    return usage.ru_maxrss / 1024


@pytest.mark.slow
def test_data_check_memory_stays_flat_when_the_file_grows_tenfold(tmp_path, tiny_model_dir):
    lines = REVIEWS.read_text().splitlines()
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_text("\n".join(lines * 4) + "\n")
    big.write_text("\n".join(lines * 40) + "\n")
    env = {**os.environ, "PHITUNE_CACHE": str(tmp_path / "cache")}
    base = ["data", "check", "--model", str(tiny_model_dir), "--no-progress"]
    small_mb = _peak_rss_mb(base + [str(small)], env)
    big_mb = _peak_rss_mb(base + [str(big)], env)
    # Holding the file's records and tokens in memory (as before) added ~21x the file size: ~50 MB here.
    assert big_mb < small_mb + 25, (small_mb, big_mb, big.stat().st_size)


@pytest.mark.slow
def test_resume_on_changed_data_is_refused_before_tokenizing(tmp_path):
    from test_train_resume import InterruptAt, resume_recipe

    from phitune.errors import DataError, TrainingInterrupted
    from phitune.training.run import train

    recipe = resume_recipe(tmp_path)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(recipe, run, callbacks=[InterruptAt(4)], progress=False)
    with open(recipe.data.train, "a") as handle:
        handle.write(GOOD + "\n")
    with pytest.raises(DataError, match="data.train changed since") as info:
        train(recipe, run, resume=True, progress=False)
    assert "content hash" in info.value.problems[0].message and "another --output" in info.value.problems[0].fix


@pytest.mark.slow
def test_two_ranks_tokenize_once_and_the_log_says_who_built_and_who_mapped(tmp_path, tiny_model_dir):
    import yaml

    data = tmp_path / "train.jsonl"
    data.write_text(REVIEWS.read_text() + GOOD + "\n")  # bytes no other test uses: a cold cache entry
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "ranks", "model": "builtin:tiny-phi3", "tracking": "none", "data": {"train": str(data)},
        "method": {"type": "lora", "r": 4, "alpha": 8}, "train": {"max_steps": 1, "batch_size": 4, "max_seq_len": 128}}))
    proc = run_cli("train", str(recipe), "--output", str(tmp_path / "run"), "--nproc", "2", "--no-progress", "-v")
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = proc.stdout + proc.stderr
    assert "built by rank 0; mapped by rank 1" in logs, logs[-3000:]
    assert logs.count("tokenized ") == 1  # one build in the whole run
