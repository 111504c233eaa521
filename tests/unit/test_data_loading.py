"""Reading, checking and splitting data files: every bad record lands at its FILE:LINE with the right
reason; on_error skip drops and logs; the validation split is deterministic and disjoint."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from phitune.data import load_eval_records, load_examples
from phitune.errors import DataError
from phitune.recipe import load_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REVIEWS = EXAMPLES / "data" / "reviews-train.jsonl"
HELDOUT = EXAMPLES / "data" / "reviews-heldout.jsonl"
GOOD = {"messages": [{"role": "user", "content": "Review: fine."}, {"role": "assistant", "content": "positive"}]}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _recipe(tiny_model_dir, train_file, **sections):
    data = {"train": str(train_file), **sections.pop("data", {})}
    return load_recipe({"model": str(tiny_model_dir), "data": data, **sections})


def _write(path, lines: list) -> str:
    with open(path, "wb") as handle:
        for line in lines:
            handle.write(line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode())
            handle.write(b"\n")
    return str(path)


def _problems(recipe, tokenizer) -> dict[str, str]:
    with pytest.raises(DataError) as info:
        load_examples(recipe, tokenizer)
    return {p.location: p.message for p in info.value.problems}


def test_known_good_file_loads_every_record(tiny_model_dir, tokenizer):
    train, evals, report = load_examples(_recipe(tiny_model_dir, REVIEWS, train={"max_seq_len": 128}), tokenizer)
    assert len(train) == 480 and evals == []
    assert report.clean and report.files[0].records == 480 and report.files[0].used == 480
    assert train[0].source == f"{REVIEWS}:1" and train[-1].source == f"{REVIEWS}:480"
    stats = report.files[0].lengths
    assert stats.min <= stats.median <= stats.p95 <= stats.max <= 128
    assert all(0 < ex.learned_tokens < len(ex) for ex in train)


def test_every_bad_chat_record_is_reported_at_its_line(tmp_path, tiny_model_dir, tokenizer):
    long_text = " ".join(["word"] * 200)
    path = _write(tmp_path / "chat.jsonl", [
        GOOD,                                                                          # 1
        '{"messages": [',                                                              # 2 invalid JSON
        [1, 2],                                                                        # 3 not an object
        {"text": "hello"},                                                             # 4 missing messages
        {"messages": "hello"},                                                         # 5 not a list
        {"messages": []},                                                              # 6 empty
        {"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]},   # 7 unknown role
        {"messages": [{"role": "user", "content": ["x"]}, {"role": "assistant", "content": "y"}]},  # 8 non-string
        {"messages": [{"role": "user", "content": "x"}]},                              # 9 no assistant turn
        {"messages": [GOOD["messages"][0], GOOD["messages"][1], {"role": "user", "content": "more?"}]},  # 10
        {"messages": [{"role": "user", "content": long_text}, {"role": "assistant", "content": "ok"}]},  # 11 too long
        "",                                                                            # 12 blank: not a record
        b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',                     # 13 Latin-1 byte
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a<|end|>b"}]},  # 14
        GOOD,                                                                          # 15
    ])
    problems = _problems(_recipe(tiny_model_dir, path, train={"max_seq_len": 64}), tokenizer)
    expected = {
        2: "invalid JSON", 3: "is a JSON list, not an object", 4: "no 'messages' key", 5: "'messages' is a JSON string, not a list",
        6: "'messages' is an empty list", 7: "unknown role 'bot'", 8: "content is a JSON list, not a string",
        9: "no assistant turn", 10: "ends with a user turn", 11: "more than train.max_seq_len=64",
        13: "not valid UTF-8 (byte 0xe9", 14: "special token '<|end|>'",
    }
    assert set(problems) == {f"{path}:{line}" for line in expected}
    for line, phrase in expected.items():
        assert phrase in problems[f"{path}:{line}"], (line, problems[f"{path}:{line}"])


def test_bad_completion_records_are_reported_at_their_line(tmp_path, tiny_model_dir, tokenizer):
    path = _write(tmp_path / "comp.jsonl", [
        {"prompt": "Q: 1+1?", "completion": " 2"},
        {"prompt": "Q: 2+2?"},
        {"completion": " 4"},
        {"prompt": "Q: 3+3?", "completion": 6},
        {"prompt": None, "completion": " 8"},
    ])
    problems = _problems(_recipe(tiny_model_dir, path, task={"type": "completion"}), tokenizer)
    assert problems == {
        f"{path}:2": "no 'completion' key (keys found: 'prompt')",
        f"{path}:3": "no 'prompt' key (keys found: 'completion')",
        f"{path}:4": "'completion' is a JSON number, not a string",
        f"{path}:5": "'prompt' is a JSON null, not a string",
    }


def test_custom_keys_and_plain_text(tmp_path, tiny_model_dir, tokenizer):
    path = _write(tmp_path / "qa.jsonl", [{"q": "Q: sky?", "a": " blue"}, {"q": "Q: grass?", "a": " green"}])
    recipe = _recipe(tiny_model_dir, path, task={"type": "completion", "prompt_key": "q", "completion_key": "a"})
    train, _, _ = load_examples(recipe, tokenizer)
    assert [tokenizer.decode([t for t in ex.labels if t >= 0]) for ex in train] == [" blue<|endoftext|>", " green<|endoftext|>"]
    text = _write(tmp_path / "text.jsonl", [{"body": "The city by the river."}])
    train, _, _ = load_examples(_recipe(tiny_model_dir, text, task={"type": "completion", "text_key": "body", "learn": "all"}), tokenizer)
    assert train[0].labels == train[0].input_ids


def test_file_level_problems(tmp_path, tiny_model_dir, tokenizer):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert _problems(_recipe(tiny_model_dir, empty), tokenizer) == {f"{empty}:1": "the file has no records"}

    utf16 = tmp_path / "utf16.jsonl"
    utf16.write_bytes(json.dumps(GOOD).encode("utf-16"))
    assert _problems(_recipe(tiny_model_dir, utf16), tokenizer) == {f"{utf16}:1": "the file is UTF-16-encoded, not UTF-8"}

    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert len(load_examples(_recipe(tiny_model_dir, bom), tokenizer)[0]) == 1  # a UTF-8 BOM is fine

    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match="data file not found"):
        load_examples(_recipe(tiny_model_dir, missing), tokenizer)


def test_on_error_skip_drops_counts_and_logs(tmp_path, tiny_model_dir, tokenizer, caplog):
    path = _write(tmp_path / "mixed.jsonl", [GOOD, "not json", GOOD, {"messages": []}, "{oops", GOOD])
    recipe = _recipe(tiny_model_dir, path, data={"on_error": "skip"})
    with caplog.at_level(logging.INFO, logger="phitune.data"):
        train, _, report = load_examples(recipe, tokenizer)
    assert [ex.source for ex in train] == [f"{path}:1", f"{path}:3", f"{path}:6"]
    file_report = report.files[0]
    assert (file_report.records, file_report.used, file_report.skipped) == (6, 3, 3)
    assert dict(file_report.skipped_reasons) == {"invalid JSON": 2, "empty messages": 1}
    assert [p.location for p in file_report.problems] == [f"{path}:2", f"{path}:4", f"{path}:5"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("skipped 3 of 6 records" in w and "2 invalid JSON" in w and "1 empty messages" in w for w in warnings)
    assert any(f"{path}:4" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_skip_with_nothing_left_is_still_an_error(tmp_path, tiny_model_dir, tokenizer):
    path = _write(tmp_path / "allbad.jsonl", ["nope", "[]"])
    with pytest.raises(DataError, match="no usable training examples"):
        load_examples(_recipe(tiny_model_dir, path, data={"on_error": "skip"}), tokenizer)


def test_validation_split_is_deterministic_disjoint_and_matches_eval_records(tiny_model_dir, tokenizer):
    recipe = _recipe(tiny_model_dir, REVIEWS, data={"validation_split": 0.1}, train={"seed": 7})
    train, evals, report = load_examples(recipe, tokenizer)
    train2, evals2, _ = load_examples(recipe, tokenizer)
    assert (len(train), len(evals)) == (432, 48) == (report.train_examples, report.eval_examples)
    assert [e.source for e in evals] == [e.source for e in evals2] and [e.source for e in train] == [e.source for e in train2]
    train_src, eval_src = {e.source for e in train}, {e.source for e in evals}
    assert not train_src & eval_src and len(train_src | eval_src) == 480
    records = load_eval_records(recipe)
    assert [r.source for r in records] == [e.source for e in evals]  # the same held-out records, same order
    other_seed = _recipe(tiny_model_dir, REVIEWS, data={"validation_split": 0.1}, train={"seed": 8})
    assert {e.source for e in load_examples(other_seed, tokenizer)[1]} != eval_src


def test_eval_records_from_validation_file_honour_limit(tiny_model_dir, tokenizer):
    recipe = _recipe(tiny_model_dir, REVIEWS, data={"validation": str(HELDOUT)}, eval={"limit": 5})
    _, evals, _ = load_examples(recipe, tokenizer)
    assert len(evals) == 80
    records = load_eval_records(recipe)
    assert [r.source for r in records] == [f"{HELDOUT}:{i}" for i in range(1, 6)]
    first = json.loads(HELDOUT.read_text().splitlines()[0])["messages"]
    assert records[0].prompt_messages == first[:-1] and records[0].reference == first[-1]["content"]
    assert records[0].prompt_text is None
    assert load_eval_records(_recipe(tiny_model_dir, REVIEWS)) == []


def test_completion_eval_records(tmp_path, tiny_model_dir):
    path = _write(tmp_path / "comp.jsonl", [{"prompt": "Q: sky?", "completion": " blue"}] * 3)
    records = load_eval_records(_recipe(tiny_model_dir, path, task={"type": "completion"}, data={"validation": path}))
    assert [(r.prompt_text, r.reference, r.prompt_messages) for r in records] == [("Q: sky?", " blue", None)] * 3
