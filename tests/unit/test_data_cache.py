"""The tokenized-data cache: what its fingerprint depends on (and what not), reuse by mapping, one
build shared by concurrent processes, atomic builds, and the same examples, problems and statistics
as the in-memory scan."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from phitune.data import cache
from phitune.data.loader import load_eval_records, load_examples, open_tokenized, scan_file
from phitune.errors import ModelError
from phitune.recipe import load_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REVIEWS = EXAMPLES / "data" / "reviews-train.jsonl"
GOOD = {"messages": [{"role": "user", "content": "Review: fine."}, {"role": "assistant", "content": "positive"}]}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("PHITUNE_CACHE", str(root))
    return root / "data"


def _recipe(tiny_model_dir, train_file, **sections):
    data = {"train": str(train_file), **sections.pop("data", {})}
    return load_recipe({"model": str(tiny_model_dir), "data": data, **sections})


def _key(recipe, tokenizer, path=None) -> str:
    return cache.fingerprint(str(path or recipe.data.train), recipe.task, tokenizer, recipe.train.max_seq_len,
                             recipe.data.max_record_bytes).key


def _copy_reviews(tmp_path: Path, name: str = "reviews.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(REVIEWS.read_bytes())
    return path


def test_fingerprint_follows_file_tokenizer_template_and_max_seq_len_only(tmp_path, tiny_model_dir, tokenizer, own_cache):
    from transformers import AutoTokenizer

    data = _copy_reviews(tmp_path)
    base = _recipe(tiny_model_dir, data)
    key = _key(base, tokenizer)
    unrelated = _recipe(tiny_model_dir, data, train={"lr": 1e-3, "batch_size": 2, "seed": 3, "epochs": 2},
                        method={"type": "lora", "r": 4}, eval={"before_after": True}, name="other")
    assert _key(unrelated, tokenizer) == key
    assert _key(base, tokenizer, _copy_reviews(tmp_path, "same-bytes.jsonl")) == key  # the content, not the name

    assert _key(_recipe(tiny_model_dir, data, train={"max_seq_len": 512}), tokenizer) != key
    assert _key(_recipe(tiny_model_dir, data, task={"type": "chat", "messages_key": "turns"}), tokenizer) != key
    other_template = AutoTokenizer.from_pretrained(tiny_model_dir)
    other_template.chat_template = tokenizer.chat_template.replace("<|end|>", "<|end|>\n\n")
    assert _key(base, other_template) != key
    other_vocab = AutoTokenizer.from_pretrained(tiny_model_dir)
    other_vocab.add_tokens(["zzyzx"])
    assert _key(base, other_vocab) != key
    with data.open("a") as handle:
        handle.write(json.dumps(GOOD) + "\n")
    assert _key(base, tokenizer) != key


def test_second_load_maps_the_cache_and_a_changed_file_is_tokenized_again(tmp_path, tiny_model_dir, tokenizer, own_cache):
    data = _copy_reviews(tmp_path)
    recipe = _recipe(tiny_model_dir, data, train={"max_seq_len": 128})
    first = open_tokenized(str(data), recipe, tokenizer)
    second = open_tokenized(str(data), recipe, tokenizer)
    assert (first.built, second.built) == (True, False) and first.key == second.key
    assert sorted(p.name for p in (own_cache / first.key).iterdir()) == ["examples.arrow", "meta.json", "problems.jsonl"]

    with data.open("a") as handle:
        handle.write(json.dumps(GOOD) + "\n")
    changed = open_tokenized(str(data), recipe, tokenizer)
    assert changed.built and changed.key != first.key and len(changed) == len(first) + 1


def test_cached_examples_problems_and_stats_equal_the_in_memory_scan(tmp_path, tiny_model_dir, tokenizer, own_cache):
    lines = [GOOD, "{oops", {"messages": []}, {"messages": [{"role": "user", "content": "word " * 200},
                                                          {"role": "assistant", "content": "ok"}]}]
    text = REVIEWS.read_text().splitlines()[:40] + [json.dumps(x) if isinstance(x, dict) else x for x in lines] * 3
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(text) + "\n")
    recipe = _recipe(tiny_model_dir, data, train={"max_seq_len": 128}, data={"on_error": "skip"})
    scan = scan_file(str(data), recipe.task, tokenizer, 128)
    train, _, report = load_examples(recipe, tokenizer)
    assert [(e.input_ids, e.labels, e.source) for e in train] == [
        (e.input_ids, e.labels, e.source) for _, e in scan.examples]
    cached = report.files[0]
    assert (cached.records, cached.used, cached.skipped) == (scan.report.records, scan.report.used, scan.report.skipped)
    assert cached.skipped_reasons == scan.report.skipped_reasons
    assert [str(p) for p in cached.problems] == [str(p) for p in scan.report.problems]
    assert cached.lengths == scan.report.lengths
    assert train.lengths() == [len(e) for _, e in scan.examples]


@pytest.mark.slow
def test_concurrent_processes_build_once_and_share(tmp_path, tiny_model_dir, own_cache):
    data = tmp_path / "big.jsonl"
    data.write_text("\n".join(REVIEWS.read_text().splitlines() * 4) + "\n")
    script = textwrap.dedent(f"""
        from transformers import AutoTokenizer
        from phitune.data.loader import open_tokenized
        from phitune.recipe import load_recipe
        recipe = load_recipe({{"model": {str(tiny_model_dir)!r}, "data": {{"train": {str(data)!r}}}}})
        file = open_tokenized({str(data)!r}, recipe, AutoTokenizer.from_pretrained({str(tiny_model_dir)!r}))
        print("built" if file.built else "mapped", file.key, len(file))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    results = sorted(out.split() for out, _ in outputs)
    assert [r[0] for r in results] == ["built", "mapped"]
    assert results[0][1:] == results[1][1:] == [results[0][1], "1920"]
    assert [p.name for p in own_cache.iterdir() if ".tmp-" in p.name] == []


def test_a_failed_build_leaves_no_entry(tmp_path, tiny_model_dir, own_cache):
    from transformers import AutoTokenizer

    no_template = AutoTokenizer.from_pretrained(tiny_model_dir)
    no_template.chat_template = None
    data = _copy_reviews(tmp_path)
    recipe = _recipe(tiny_model_dir, data)
    with pytest.raises(ModelError, match="no chat template"):
        open_tokenized(str(data), recipe, no_template)
    assert [p for p in own_cache.iterdir() if p.is_dir() and p.name != "hashes"] == []


def test_eval_records_are_at_most_max_examples_chosen_by_seed(tmp_path, tiny_model_dir, tokenizer, own_cache):
    recipe = _recipe(tiny_model_dir, REVIEWS, data={"validation_split": 0.2}, eval={"max_examples": 10})
    _, evals, _ = load_examples(recipe, tokenizer)
    reread = load_eval_records(recipe, evals)  # only the chosen records are read again, by byte offset
    streamed = load_eval_records(recipe)  # the whole file streamed
    assert len(evals) == 96 and len(reread) == 10
    assert [(r.source, r.reference, r.prompt_messages) for r in reread] == [
        (r.source, r.reference, r.prompt_messages) for r in streamed]
    lines = [int(r.source.rsplit(":", 1)[1]) for r in reread]
    assert lines == sorted(lines) and {r.source for r in reread} <= {e.source for e in evals}
    other_seed = _recipe(tiny_model_dir, REVIEWS, data={"validation_split": 0.2}, eval={"max_examples": 10},
                         train={"seed": 5})
    assert {r.source for r in load_eval_records(other_seed)} != {r.source for r in reread}
    everything = _recipe(tiny_model_dir, REVIEWS, data={"validation_split": 0.2}, eval={"max_examples": None})
    assert len(load_eval_records(everything)) == 96


def test_cache_command_lists_and_clears(tmp_path, tiny_model_dir, tokenizer, own_cache, capsys):
    from phitune.cli import main

    data = _copy_reviews(tmp_path)
    file = open_tokenized(str(data), _recipe(tiny_model_dir, data), tokenizer)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert file.key in out and str(data.resolve()) in out and "480" in out
    assert main(["cache", "clear", "nope"]) == 2
    assert main(["cache", "clear", file.key]) == 0
    assert "removed 1 cached data file" in capsys.readouterr().out
    assert not (own_cache / file.key).exists()
    main(["cache", "list"])
    assert "(empty)" in capsys.readouterr().out


def test_no_progress_means_no_tokenizing_or_templating_bar(tmp_path, tiny_model_dir, tokenizer, own_cache, capfd):
    data = tmp_path / "many.jsonl"
    data.write_text("\n".join(REVIEWS.read_text().splitlines() * 5) + "\n")  # 2,400 records: the old bar showed
    load_examples(_recipe(tiny_model_dir, data), tokenizer, progress=False)
    err = capfd.readouterr().err
    assert "templating" not in err and "tokenizing" not in err


def test_generative_labels_are_a_one_byte_mask_and_head_labels_stay_ids(tmp_path, tiny_model_dir, tokenizer, own_cache):
    """A chat file's cache stores the ids and a learn mask (5 bytes a token); a classifier head's labels
    are class ids and are stored as they are. Both read back exactly as the in-memory scan makes them."""
    from phitune.data.labels import with_task_labels

    chat_file = tmp_path / "chat.jsonl"
    chat_file.write_text("\n".join(REVIEWS.read_text().splitlines() * 5) + "\n")
    chat = _recipe(tiny_model_dir, chat_file, train={"max_seq_len": 128})
    head = with_task_labels(load_recipe({
        "model": str(tiny_model_dir), "train": {"max_seq_len": 128},
        "data": {"train": str(EXAMPLES / "data" / "classification-train.csv")},
        "task": {"type": "classification", "sentence1_key": "sentence1", "label_key": "label", "head": "classifier"}}))
    for recipe, stored in ((chat, "learn"), (head, "labels")):
        file = open_tokenized(str(recipe.data.train), recipe, tokenizer)
        assert file.meta["labels"] == stored
        scan = scan_file(str(recipe.data.train), recipe.task, tokenizer, 128)
        assert [(e.input_ids, e.labels) for e in file.view()] == [(e.input_ids, e.labels) for _, e in scan.examples]
        assert any(label != -100 for e in file.view() for label in e.labels)

    chat_file_cache = open_tokenized(str(chat_file), chat, tokenizer)
    tokens = int(sum(chat_file_cache.lengths))
    size = (own_cache / chat_file_cache.key / "examples.arrow").stat().st_size
    assert size < tokens * 5 + 64 * len(chat_file_cache) + 4096  # ids + mask + per-example columns; int32 labels would add 3 bytes a token
