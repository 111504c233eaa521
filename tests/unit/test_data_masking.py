"""Label masking, token by token, with the real tiny Phi-3 tokenizer and its chat template."""

from __future__ import annotations

import pytest

from phitune.data.records import IGNORE_INDEX, RecordInvalid
from phitune.data.tasks import ChatSample, TextSample
from phitune.data.template import encode_samples
from phitune.errors import ModelError

MULTI_TURN = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris is the capital."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": " Rome, 42 times!"},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _learned_runs(tokenizer, ids, labels) -> list[str]:
    """Decode each contiguous run of learned tokens."""
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE_INDEX:
            assert label == token, "a learned label must equal its input token (the model shifts internally)"
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def _encode_one(tokenizer, sample):
    [result] = encode_samples(tokenizer, [("f.jsonl:1", sample)])
    return result


def test_multi_turn_chat_learns_exactly_each_assistant_content_and_its_end_token(tokenizer):
    ids, labels = _encode_one(tokenizer, ChatSample(MULTI_TURN))
    assert len(ids) == len(labels)
    assert _learned_runs(tokenizer, ids, labels) == ["Paris is the capital.<|end|>", " Rome, 42 times!<|end|>"]
    masked_text = tokenizer.decode([t for t, label in zip(ids, labels) if label == IGNORE_INDEX])
    for message in MULTI_TURN[:2] + MULTI_TURN[3:4]:  # system and user turns are never learned
        assert message["content"] in masked_text
    for special in ("<|system|>", "<|user|>", "<|assistant|>", "<|endoftext|>"):
        token_id = tokenizer.convert_tokens_to_ids(special)
        assert all(label != token_id for label in labels), f"{special} must not be learned"


def test_chat_ids_are_what_apply_chat_template_tokenizes(tokenizer):
    ids, _ = _encode_one(tokenizer, ChatSample(MULTI_TURN))
    expected = tokenizer.apply_chat_template(MULTI_TURN, tokenize=True, return_dict=True)["input_ids"]
    assert ids == list(expected)


def test_completion_learns_the_completion_and_eos_only(tokenizer):
    ids, labels = _encode_one(tokenizer, TextSample(prompt="Review: the hotel was great. Label:", answer=" positive"))
    assert _learned_runs(tokenizer, ids, labels) == [" positive<|endoftext|>"]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode([t for t, label in zip(ids, labels) if label == IGNORE_INDEX]) == "Review: the hotel was great. Label:"


def test_plain_text_learns_every_token(tokenizer):
    ids, labels = _encode_one(tokenizer, TextSample(prompt="", answer="The river ran past the city."))
    assert labels == ids
    assert tokenizer.decode(ids) == "The river ran past the city.<|endoftext|>"


def test_special_token_spelled_in_content_is_a_bad_record(tokenizer):
    sample = ChatSample([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok<|end|> more"}])
    result = _encode_one(tokenizer, sample)
    assert isinstance(result, RecordInvalid)
    assert result.kind == "special token in text" and "'<|end|>'" in result.message


def test_template_that_is_not_prefix_stable_raises_model_error(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # renders the number of messages first: an earlier prefix never matches the full conversation
    tok.chat_template = ("{{ messages|length }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>"
                         "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    with pytest.raises(ModelError) as info:
        _encode_one(tok, ChatSample(MULTI_TURN[1:3]))
    assert info.value.problems[0].location == "f.jsonl:1"
    assert "prefix" in info.value.problems[0].message


def test_template_rejecting_a_conversation_is_a_bad_record(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                         "{{ raise_exception('System role not supported') }}{% endif %}"
                         "<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    result = _encode_one(tok, ChatSample(MULTI_TURN))
    assert isinstance(result, RecordInvalid)
    assert result.kind == "rejected by chat template" and "System role not supported" in result.message
    ids, labels = _encode_one(tok, ChatSample(MULTI_TURN[1:]))  # without the system turn it works
    assert _learned_runs(tok, ids, labels) == ["Paris is the capital.<|end|>", " Rome, 42 times!<|end|>"]
