"""The pieces of benchmarks/train_throughput.py: the chat data, one timed training run per system
(phitune's `train()` and TRL's `SFTTrainer`), and the referee loss both trained models are scored with.

Each run happens in its own process (`train_throughput.py --worker SYSTEM`), so neither system
inherits the other's threads, caches or memory. A run reports:
- tokens: non-padding input tokens the training loop consumed (every epoch of the same conversations,
  tokenized to the same ids by both systems, checked);
- loop_s / cpu_s: wall and process CPU time (all threads) of the training loop only. phitune: from
  the tracker's `log_params` (which `train()` calls right before the loop) to the last step's
  `on_step_end` callback (no validation data, no checkpoints, so nothing else is in between). TRL:
  from the Trainer's `on_train_begin` callback to `on_train_end` (after its dataloader and
  accelerate setup, which TRL does inside `train()`; that setup is left out in TRL's favour). Model
  load, templating and tokenization are outside both. CPU time is the load-robust one: on a shared
  machine wall time mostly measures the neighbours;
- padded: input positions actually fed to the model (padding included), for the padding fraction;
- heldout_loss: `referee_loss` on the held-out conversations.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

# Phi-3's template (phitune.models.tiny.PHI3_CHAT_TEMPLATE) with {% generation %} around what
# phitune learns of an assistant turn (content + <|end|>), which TRL's assistant_only_loss needs.
# It renders the same text; `run_trl` checks the ids and the learned positions match phitune's.
PHI3_GENERATION_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' }}"
    "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# --- data -------------------------------------------------------------------------------------------

COLORS = "red blue green yellow black white orange purple brown gray pink".split()
THINGS = "phone laptop camera book movie hotel restaurant coffee shoes jacket game app car house".split()
PLACES = "city river mountain ocean forest desert office room home world".split()
GOOD = "excellent wonderful amazing fantastic superb lovely brilliant pleasant reliable sturdy".split()
BAD = "terrible awful horrible dreadful disappointing broken poor useless flimsy noisy".split()
PEOPLE = "teacher friend father mother president team kid parent member guy girl".split()
VERBS = "made brought found showed gave kept called played moved wrote".split()
QUESTIONS = ["Tell me about the {c} {t} in the {p}.", "What do you think of the {c} {t}?",
             "Is the {c} {t} from the {p} any good?", "Can you review the {c} {t} for me?",
             "Why did my {w} like the {c} {t}?"]
ANSWERS = ["The {c} {t} is {a}.", "My {w} {v} the {c} {t} to the {p}, and it was {a}.",
           "I think the {t} is {a} because the {c} design is {a2}.", "It has a {a} {c} screen and a {a2} sound.",
           "People in the {p} say the {t} is {a}.", "After {n} days the {t} was still {a}.",
           "The price was {n} and the quality was {a}.", "Overall, the {c} {t} is {a} and {a2}."]


def make_conversations(tokenizer, n: int, seed: int) -> list[dict]:
    """`n` chat records of 20-400 tokens (median ~160) under the Phi-3 template, deterministic in
    (tokenizer, n, seed). Answers are about what the user asked, with a sentiment, so there is
    something to learn beyond word frequencies."""
    rng = random.Random(f"train-throughput:{seed}")
    records = []
    while len(records) < n:
        target = int(min(400, max(20, rng.lognormvariate(math.log(160), 0.55))))
        record = _conversation(rng, tokenizer, target)
        if 20 <= count_tokens(tokenizer, record["messages"]) <= 400:
            records.append(record)
    return records


def _conversation(rng: random.Random, tokenizer, target: int) -> dict:
    messages = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": "You are a helpful assistant who writes short reviews."})
    turns = 1 if target < 120 else rng.randint(1, 3)
    share = max(4, target // (turns * 2))  # tokens per message, roughly: a quarter prompt, most answer
    for _ in range(turns):
        slots = _slots(rng)
        messages.append({"role": "user", "content": rng.choice(QUESTIONS).format(**slots)})
        sentences = [rng.choice(ANSWERS).format(**slots) for _ in range(1 + share // 8)]
        messages.append({"role": "assistant", "content": " ".join(sentences)})
    while count_tokens(tokenizer, messages) > target:  # trim the last answer word by word
        words = messages[-1]["content"].split()
        if len(words) <= 3:
            break
        messages[-1]["content"] = " ".join(words[:-1])
    return {"messages": messages}


def _slots(rng: random.Random) -> dict:
    positive = rng.random() < 0.5
    adjectives = GOOD if positive else BAD
    return {"c": rng.choice(COLORS), "t": rng.choice(THINGS), "p": rng.choice(PLACES), "w": rng.choice(PEOPLE),
            "v": rng.choice(VERBS), "n": rng.randint(2, 90), "a": rng.choice(adjectives), "a2": rng.choice(adjectives)}


def count_tokens(tokenizer, messages: list[dict]) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


# --- the referee ------------------------------------------------------------------------------------


def heldout_examples(spec: dict, tokenizer):
    """phitune's templating and masking of the held-out file (the same masks TRL gets, see run_trl)."""
    from phitune.data.loader import scan_file
    from phitune.recipe.task import ChatTask

    scan = scan_file(spec["heldout"], ChatTask(), tokenizer, spec["max_seq_len"], role="validation")
    return [ex for _, ex in scan.examples]


def referee_loss(model, examples, pad_id: int, batch_size: int = 8) -> float:
    """Mean token cross-entropy over learned (assistant) tokens, from the model's full logits with the
    usual causal shift: deliberately not phitune's loss code, so neither system grades itself."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            width = max(len(e.input_ids) for e in chunk)
            ids = torch.full((len(chunk), width), pad_id)
            labels = torch.full((len(chunk), width), -100)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, e in enumerate(chunk):
                ids[row, :len(e)] = torch.tensor(e.input_ids)
                labels[row, :len(e)] = torch.tensor(e.labels)
                mask[row, :len(e)] = 1
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
            total += float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                           ignore_index=-100, reduction="sum"))
            count += int((labels[:, 1:] != -100).sum())
    return total / count


# --- the two systems --------------------------------------------------------------------------------


def run_phitune(spec: dict, packing: bool) -> dict:
    """The product path: a Recipe through `phitune.training.run.train`, batching as it defaults (random
    batches, each one padding-free row when that is cheaper), or with train.packing."""
    import tempfile

    from phitune.models.run_dir import load_for_inference
    from phitune.recipe.schema import Recipe
    from phitune.tracking import NullTracker
    from phitune.training.run import choose_attention, make_collator, train

    stamps: dict[str, tuple[float, float]] = {}

    class LoopStart(NullTracker):  # tracking: none, plus a timestamp
        def log_params(self, params):
            stamps["begin"] = (time.perf_counter(), time.process_time())

    class LoopEnd:
        def on_step_end(self, info):
            if info.step == info.total_steps:
                stamps["end"] = (time.perf_counter(), time.process_time())

    recipe = Recipe.model_validate({
        "name": "bench-phitune",
        "model": {"name": spec["model_dir"]},
        "task": {"type": "chat"},
        "data": {"train": spec["train"]},
        "method": {"type": "lora", "r": spec["lora_r"], "alpha": spec["lora_alpha"], "dropout": 0.0,
                   "target_modules": spec["targets"]},
        "train": {"epochs": spec["epochs"], "lr": spec["lr"], "scheduler": "linear", "batch_size": spec["batch_size"],
                  "max_seq_len": spec["max_seq_len"], "seed": spec["seed"], "packing": packing,
                  "max_grad_norm": 1.0, "weight_decay": 0.0},
        "tracking": "none",
    })
    with tempfile.TemporaryDirectory(prefix="bench-phitune-") as out:
        result = train(recipe, out, progress=False, tracker=LoopStart(), callbacks=[LoopEnd()])
        m = result.metrics
        model, tokenizer = load_for_inference(out)
        choose_attention(model, recipe)  # as train() chose for the model it trained (make_collator reads it)
        history = m["train_loss_history"]
        lengths = _train_lengths(spec, tokenizer)
        return {"system": "phitune (packing)" if packing else "phitune", "tokens": m["train_tokens"],
                "loop_s": stamps["end"][0] - stamps["begin"][0], "cpu_s": stamps["end"][1] - stamps["begin"][1],
                "phitune_loop_time_s": m["train_runtime_s"], "steps": m["steps"],
                "padded": _phitune_padded(lengths, recipe.train, make_collator(recipe, tokenizer.pad_token_id, model)),
                "train_loss_last": sum(h["loss"] for h in history[-5:]) / len(history[-5:]),
                "heldout_loss": referee_loss(model, heldout_examples(spec, tokenizer), tokenizer.pad_token_id)}


def _train_lengths(spec: dict, tokenizer) -> list[int]:
    from phitune.data.loader import scan_file
    from phitune.recipe.task import ChatTask

    return [len(ex) for _, ex in scan_file(spec["train"], ChatTask(), tokenizer, spec["max_seq_len"]).examples]


def _phitune_padded(lengths: list[int], train_spec, collator) -> int:
    """Positions fed to the model: the plans `train()` used are a pure function of (lengths, seed, epoch),
    and each batch's layout (padded rows or one padding-free row) is `collator`'s rule (the collator
    `train()` built, rebuilt here by the same function)."""
    from phitune.data.batching import plan_batches

    total = 0
    for epoch in range(math.ceil(train_spec.epochs)):
        plan = plan_batches(lengths, train_spec.batch_size, seed=train_spec.seed, epoch=epoch,
                            group_by_length=train_spec.group_by_length, packing=train_spec.packing,
                            max_seq_len=train_spec.max_seq_len)
        for batch in plan:
            sizes = [lengths[i] for i in batch]
            total += sum(sizes) if collator.padding_free(sizes) else max(sizes) * len(sizes)
    return total


def run_trl(spec: dict) -> dict:
    """TRL's SFTTrainer with the same model, LoRA, optimiser settings and data; fp32 and no gradient
    checkpointing like phitune (SFTConfig's own defaults are bf16 and checkpointing on)."""
    import tempfile

    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(spec["seed"])
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    tokenizer.chat_template = PHI3_GENERATION_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    dataset = load_dataset("json", data_files=spec["train"], split="train")
    lora = LoraConfig(task_type="CAUSAL_LM", r=spec["lora_r"], lora_alpha=spec["lora_alpha"], lora_dropout=0.0,
                      target_modules=spec["targets"], bias="none")

    clock: dict[str, tuple[float, float]] = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock["begin"] = (time.perf_counter(), time.process_time())

        def on_train_end(self, args, state, control, **kwargs):
            clock["end"] = (time.perf_counter(), time.process_time())

    with tempfile.TemporaryDirectory(prefix="bench-trl-") as out:
        config = SFTConfig(output_dir=out, assistant_only_loss=True, per_device_train_batch_size=spec["batch_size"],
                           max_length=spec["max_seq_len"], num_train_epochs=spec["epochs"],
                           learning_rate=spec["lr"], lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
                           max_grad_norm=1.0, optim="adamw_torch", seed=spec["seed"], use_cpu=True, bf16=False,
                           gradient_checkpointing=False, report_to=[], logging_steps=5, save_strategy="no",
                           disable_tqdm=True, dataloader_num_workers=0)
        trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=lora, callbacks=[Clock()])
        fed = {"real": 0, "padded": 0}
        collator = trainer.data_collator

        def counting_collator(features):
            batch = collator(features)
            fed["real"] += int(batch["attention_mask"].sum())
            fed["padded"] += int(batch["input_ids"].numel())
            return batch

        trainer.data_collator = counting_collator
        same = _check_same_tokens(trainer.train_dataset, spec, tokenizer)
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        held = heldout_examples(spec, tokenizer)
        return {"system": "TRL SFTTrainer", "tokens": fed["real"], "loop_s": clock["end"][0] - clock["begin"][0],
                "cpu_s": clock["end"][1] - clock["begin"][1],
                "steps": trainer.state.global_step, "padded": fed["padded"], "train_loss_last": losses[-1],
                "heldout_loss": referee_loss(trainer.model, held, tokenizer.pad_token_id), "same_data": same}


def _check_same_tokens(dataset, spec: dict, tokenizer) -> str:
    """TRL's tokenized dataset must hold phitune's ids and learn exactly phitune's labels (TRL turns the
    assistant masks into a `labels` column)."""
    from phitune.data.loader import scan_file
    from phitune.recipe.task import ChatTask

    ours = [ex for _, ex in scan_file(spec["train"], ChatTask(), tokenizer, spec["max_seq_len"]).examples]
    if len(ours) != len(dataset):
        raise SystemExit(f"TRL kept {len(dataset)} conversations, phitune {len(ours)}")
    for k, (ex, row) in enumerate(zip(ours, dataset)):
        learned = [i for i, label in enumerate(ex.labels) if label != -100]
        if list(row["input_ids"]) != list(ex.input_ids) or learned != [i for i, y in enumerate(row["labels"]) if y != -100]:
            raise SystemExit(f"conversation {k}: TRL and phitune disagree on the ids or the learned tokens")
    return f"ids and assistant masks identical on all {len(ours)} conversations"
