"""The plain recipe sections: model, data, train, eval, tracking, output."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from phitune.recipe.base import Section

BUILTIN_PREFIX = "builtin:"


class ModelSpec(Section):
    """`model:` — `builtin:tiny-phi3`, a local folder, or a Hugging Face hub id.

    The string shorthand `model: builtin:tiny-phi3` is accepted for `model: {name: builtin:tiny-phi3}`.
    """

    name: str = Field("builtin:tiny-phi3", min_length=1)
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(False, description="Run model code from the hub. Off unless you trust it.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="dtype the base weights are loaded in."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def is_builtin(self) -> bool:
        return self.name.startswith(BUILTIN_PREFIX)


class DataSpec(Section):
    """`data:` — training and held-out files. Relative paths are resolved against the recipe's folder."""

    train: str = Field(..., min_length=1, description="Training file: JSON Lines (.jsonl, .json, .ndjson; any other "
                       "suffix is read as JSON Lines), CSV, TSV or Parquet; on Azure targets also an azureml: URI.")
    validation: str | None = Field(None, description="Held-out file. Exclusive with validation_split.")
    validation_split: float | None = Field(
        None, gt=0.0, lt=0.5, description="Fraction of train held out (seeded). Exclusive with validation."
    )
    on_error: Literal["fail", "skip"] = Field(
        "fail", description="Bad records: fail lists them all; skip drops them and logs how many and why."
    )
    max_record_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="A record (JSONL line) longer than this many bytes is a bad record, "
        "rejected without being read into memory (default 8 MiB)."
    )

    @model_validator(mode="after")
    def _one_validation_source(self) -> "DataSpec":
        if self.validation is not None and self.validation_split is not None:
            raise ValueError(
                "data.validation and data.validation_split are exclusive: keep the file, or the split, not both"
            )
        return self


class DeepSpeedSpec(Section):
    """`train.deepspeed:` — DeepSpeed ZeRO across processes. Either the fields below, or `config:` (a
    DeepSpeed JSON of your own, relative to the recipe), not both. `phitune.distributed.ds_config`
    turns this into the DeepSpeed config; the estimator reads the same fields."""

    stage: Literal[0, 1, 2, 3] | None = Field(
        None, description="ZeRO stage: 1 shards optimizer states, 2 also gradients, 3 also parameters (default 2)."
    )
    offload_optimizer: bool | None = Field(None, description="Keep optimizer states (and the update) in CPU memory.")
    offload_params: bool | None = Field(None, description="Keep parameters in CPU memory (stage 3 only).")
    config: str | None = Field(None, min_length=1, description="Path to a DeepSpeed JSON; exclusive with the fields above.")

    @model_validator(mode="before")
    @classmethod
    def _defaults_unless_config(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("config") is not None:
            given = [k for k in ("stage", "offload_optimizer", "offload_params") if data.get(k) is not None]
            if given:
                names = ", ".join(f"train.deepspeed.{k}" for k in given)
                raise ValueError(f"train.deepspeed.config is exclusive with {names}: put those settings in the JSON "
                                 "file, or drop config")
            return data
        data.setdefault("stage", 2)
        data.setdefault("offload_optimizer", False)
        data.setdefault("offload_params", False)
        if data.get("offload_params") and data.get("stage") != 3:
            raise ValueError(f"train.deepspeed.offload_params needs train.deepspeed.stage: 3 (got stage "
                             f"{data.get('stage')}): set stage: 3, or offload_params: false")
        return data


class TrainSpec(Section):
    """`train:` — the optimisation loop. Steps are optimizer steps (after gradient accumulation)."""

    epochs: float = Field(1.0, gt=0, le=10_000, description="Passes over the training data (ignored when max_steps "
                          "is set).")  # bounded: epochs x steps per epoch must stay a finite step count
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps; overrides epochs.")
    lr: float = Field(2e-4, gt=0, lt=1.0, description="Peak learning rate.")
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps. Exclusive with warmup_ratio.")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Warmup as a fraction of total steps.")
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping; null turns it off.")
    batch_size: int = Field(8, ge=1, le=4096, description="Micro-batch size per device (sequences).")
    grad_accum: int = Field(1, ge=1, le=4096, description="Micro-batches per optimizer step.")
    max_seq_len: int = Field(1024, ge=8, le=1_048_576, description="Longer examples are reported as data errors.")
    packing: bool = Field(False, description="Pack examples into bins of batch_size x max_seq_len tokens, one "
                          "padding-free row per step (fewer, larger steps); examples never attend to each other.")
    group_by_length: bool = Field(False, description="Batch examples of similar length (padded rows). Off: random "
                                  "batches, each one padding-free row when that is cheaper (no padding, and a lower "
                                  "held-out loss than length grouping in benchmarks/train_throughput.py).")
    seed: int = Field(42, ge=0)
    eval_every: int | None = Field(None, ge=1, description="Evaluate on the held-out data every N steps.")
    save_every: int | None = Field(None, ge=1, description="Write a resumable checkpoint every N steps.")
    log_every: int = Field(1, ge=1, description="Log metrics every N steps.")
    gradient_checkpointing: bool = False
    deepspeed: DeepSpeedSpec | None = Field(None, description="DeepSpeed ZeRO settings; null trains without DeepSpeed.")

    @model_validator(mode="after")
    def _one_warmup(self) -> "TrainSpec":
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("train.warmup_steps and train.warmup_ratio are exclusive: set one, leave the other 0")
        return self


class EvalSpec(Section):
    """`eval:` — held-out evaluation of generations."""

    before_after: bool = Field(False, description="Evaluate the held-out split before and after training.")
    limit: int | None = Field(None, ge=1, description="Evaluate at most this many held-out examples.")
    max_examples: int | None = Field(200, ge=1, description="Generation-based metrics (exact match, before/after) use at "
                                     "most this many held-out records, chosen with train.seed; the held-out loss "
                                     "always covers all of them. null: every record.")
    max_new_tokens: int = Field(32, ge=1, le=4096)


class TrackingSpec(Section):
    """`tracking:` — MLflow (MLFLOW_TRACKING_URI if set, else ./mlruns.db) or none. `tracking: none` is shorthand."""

    backend: Literal["mlflow", "none"] = "mlflow"
    experiment: str = Field("phitune", min_length=1)
    run_name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"backend": value} if isinstance(value, str) else value


class OutputSpec(Section):
    """`output:` — what a finished run writes besides adapter/ and metrics."""

    merge: bool = Field(False, description="Also write merged/ (base + adapter folded together).")
