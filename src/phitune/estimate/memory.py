"""Per-device training memory for a recipe: weights, gradients, optimizer states, activations.

Model states follow the ZeRO paper (phitune.estimate.zero) with these byte counts per parameter:
- trainable: weights w, gradients w, Adam 2w (torch AdamW keeps its moments in the parameter dtype;
  w = model.dtype bytes), or 2 + 2 + 12 under DeepSpeed mixed precision (fp32 master copy);
  adapters are always fp32 (peft up-casts them), so 4 + 4 + 8, or 2 + 2 + 12 under DeepSpeed bf16;
- frozen base of adapter methods: model.dtype bytes; QLoRA: 4-bit/8-bit linear weights with their
  quantization constants, everything else fp32 (prepare_model_for_kbit_training up-casts it).

Activations (saved for backward, per micro-batch), in elements per token, times the compute dtype
bytes, for a Llama/Phi-3 style decoder (h hidden, I MLP width, L layers, V vocabulary):
    L * (c_h * h + c_i * I)  +  c_0 * h      and the logits: V fp32 values per labelled token.
The coefficients per method family (each method's `activation_coefficients`) were measured with torch.autograd.graph.saved_tensors_hooks on
transformers 5.23's Phi-3 (SDPA attention, which stores no s x s score matrix): full 13h + 4I per
layer, LoRA 14h + 5I (its dropout copies of each adapted input), ... For comparison Korthikanti et al.
(2022) give s*b*h*(34 + 5*a*s/h) bytes per GPT layer in 16-bit with materialised attention scores.
With gradient checkpointing only each layer's input (h) is kept, plus one layer recomputed during
backward. DoRA, LoHa and LoKr also build weight-sized tensors per adapted layer (`weight_sized_update`).
Peak memory adds a backward transient (the gradient of the logits and of one layer's widest
activations) and, with one micro-batch per step, subtracts the overlap of gradients and activations:
backward frees each layer's activations as its gradients appear, so both are never at their peak at
once (with accumulation the gradients stay through the next forward, so they add up).
Checked against measured CPU peaks in benchmarks/estimate_accuracy.py (README: "Memory estimates").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from phitune.estimate import zero as z

if TYPE_CHECKING:
    from phitune.estimate.shapes import ModelShape
    from phitune.recipe.schema import Recipe

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
CPU_RUNTIME_BYTES = 0.46e9  # python + torch + transformers + peft, measured RSS before loading a model
GPU_RUNTIME_BYTES = 1.0e9  # CUDA context + cuBLAS workspace + allocator slack: an assumption, not measured


@dataclass(frozen=True)
class Hardware:
    device: Literal["cpu", "gpu"]
    memory_bytes: float  # per GPU, or the machine's RAM for cpu (shared by its processes)
    gpus: int = 1  # processes per node
    nodes: int = 1
    runtime_bytes: float | None = None  # per process; default CPU_RUNTIME_BYTES / GPU_RUNTIME_BYTES

    @property
    def world(self) -> int:
        return self.gpus * self.nodes

    @property
    def runtime(self) -> float:
        if self.runtime_bytes is not None:
            return self.runtime_bytes
        return CPU_RUNTIME_BYTES if self.device == "cpu" else GPU_RUNTIME_BYTES

    @property
    def budget_per_process(self) -> float:
        """What one process may use: a GPU's memory, or the RAM shared by this node's processes."""
        return self.memory_bytes / self.gpus if self.device == "cpu" else self.memory_bytes


@dataclass(frozen=True)
class Estimate:
    """Bytes per device (per process). `activations` is None when the architecture is unknown."""

    weights: float
    gradients: float
    optimizer: float
    activations: float | None
    activations_per_sample: float | None
    activations_fixed: float  # per step, not per sample (weight-sized tensors of DoRA/LoHa/LoKr)
    overlap: float  # activations freed while gradients appear (grad_accum 1): not both at their peak
    buffers: float  # DeepSpeed buckets / ZeRO-3 gathered parameters
    runtime: float
    offloaded: float  # kept in CPU RAM by ZeRO-Offload (per process)
    micro_batch: int
    stage: int
    devices: int
    precision: str
    trainable_params: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def static(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.buffers + self.runtime

    @property
    def total(self) -> float:
        return self.static + (self.activations or 0.0) - self.overlap


def estimate(recipe: "Recipe", shape: "ModelShape", hardware: Hardware) -> Estimate:
    from phitune.distributed.ds_config import zero_settings

    method, dtype = recipe.method, recipe.model.dtype
    ds = zero_settings(recipe, device=hardware.device)
    stage, devices = (ds.stage, hardware.world) if ds else (0, 1)
    mixed = ds is not None and ds.precision != "fp32"
    w = DTYPE_BYTES[dtype]
    notes: list[str] = []
    if ds is None and hardware.world > 1:
        notes.append("no train.deepspeed: every process holds a full replica (data parallel)")

    trainable = shape.trainable_params
    if method.trains_all_weights:
        states = z.trainable_states(shape.total_params, devices, stage, 2 if mixed else w, 2 if mixed else w,
                                    z.ADAM_MIXED_K if mixed else 2 * w)
        frozen = 0.0
    else:
        a = 2 if mixed else 4
        states = z.trainable_states(trainable or 0, devices, stage, a, a, z.ADAM_MIXED_K if mixed else 8)
        frozen = z.frozen_weights(_frozen_base_bytes(recipe, shape, 2 if mixed else w), devices, stage)
        if trainable is None:
            notes.append("adapter size unknown without the model config: adapter states not counted")
    weights, optimizer = states.weights + frozen, states.optimizer
    offloaded = 0.0
    if ds and ds.offload_optimizer:
        offloaded += optimizer
        optimizer = 0.0
    if ds and ds.offload_params:
        offloaded += weights
        weights = 0.0
    buffers = _deepspeed_buffers(ds, shape, shape.total_params if method.trains_all_weights else trainable,
                                 2 if mixed else w) if ds else 0.0

    compute = 2 if mixed else DTYPE_BYTES[(getattr(method, "compute_dtype", None) or dtype)]
    per_sample, fixed = activation_bytes(recipe, shape, 1, compute) if shape.has_architecture else (None, 0.0)
    if per_sample is None:
        notes.append("activations unknown without the model config (hidden size, layers)")
    b = recipe.train.batch_size
    activations = None if per_sample is None else fixed + per_sample * b
    # Backward frees each layer's activations as its gradients appear, so with one micro-batch per
    # step the two peaks do not add up; accumulation keeps gradients through the next forward.
    overlap = min(states.gradients, activations) if activations and recipe.train.grad_accum == 1 else 0.0
    return Estimate(weights=weights, gradients=states.gradients, optimizer=optimizer, activations=activations,
                    activations_per_sample=per_sample, activations_fixed=fixed, overlap=overlap, buffers=buffers,
                    runtime=hardware.runtime, offloaded=offloaded, micro_batch=b, stage=stage,
                    devices=devices, precision=ds.precision if ds else dtype, trainable_params=trainable, notes=notes)


def activation_bytes(recipe: "Recipe", shape: "ModelShape", batch: int, element_bytes: int) -> tuple[float, float]:
    """(bytes that grow with the micro-batch, bytes per step) of activations for `batch` rows of
    train.max_seq_len tokens (every token a label: chat data that masks prompts needs less)."""
    method = recipe.method
    c_h, c_i, c_0 = method.activation_coefficients
    h, inter, layers = shape.hidden, shape.intermediate, shape.layers
    tokens = batch * (recipe.train.max_seq_len + method.input_tokens_added)
    one_layer = c_h * h + c_i * inter + _dora_per_token(recipe, shape)
    if recipe.train.gradient_checkpointing:
        kept = layers * h + one_layer + c_0 * h  # layer inputs + the layer being recomputed
    else:
        kept = layers * one_layer + c_0 * h
    logits = shape.vocab * 4.0  # fp32 logits of labelled positions (the loss up-casts)
    # Backward transient: gradients of the logits and of the widest activations of one layer.
    transient = shape.vocab * 4.0 + (2 * inter + 2 * h) * element_bytes
    return tokens * (kept * element_bytes + logits + transient), _weight_sized(recipe, shape) * element_bytes


def max_micro_batch(recipe: "Recipe", shape: "ModelShape", hardware: Hardware, est: Estimate) -> int | None:
    """Largest micro-batch whose total fits the per-process budget (0: not even 1; None: unknown)."""
    if not est.activations_per_sample:
        return None
    budget = hardware.budget_per_process
    fixed = est.static + est.activations_fixed
    if recipe.train.grad_accum == 1:  # total = static - gradients + max(gradients, activations)
        if est.static > budget:
            return 0
        fixed -= est.gradients
    return max(0, math.floor((budget - fixed) / est.activations_per_sample))


def fits(est: Estimate, hardware: Hardware) -> bool:
    return est.total <= hardware.budget_per_process


def _frozen_base_bytes(recipe: "Recipe", shape: "ModelShape", weight_bytes: int) -> float:
    """Bytes of the frozen base model of an adapter method."""
    method = recipe.method
    if not method.quantized_base:
        return shape.total_params * weight_bytes
    if not shape.quantizable_params:  # --params only: assume every weight is quantized
        return z.quantized_weight_bytes(shape.total_params, 0, method.bits, bool(method.double_quant))
    rest = shape.total_params - shape.quantizable_params
    return z.quantized_weight_bytes(shape.quantizable_params, shape.quantized_rows, method.bits,
                                    bool(method.double_quant)) + rest * 4.0


def _deepspeed_buffers(ds, shape: "ModelShape", trainable: int | None, weight_bytes: int) -> float:
    """Gradient reduce / all-gather buckets (stages 1-2), or ZeRO-3's gathered parameters (the
    layer being computed plus the prefetch bucket), never more than the model holds."""
    if ds.stage == 0:
        return 0.0
    if ds.stage == 3:
        live = min(ds.max_live_parameters, shape.largest_layer_params + ds.prefetch_bucket, shape.total_params)
        return live * weight_bytes
    return min(ds.reduce_bucket + ds.allgather_bucket, 2 * (trainable or 0)) * weight_bytes


def _dora_per_token(recipe: "Recipe", shape: "ModelShape") -> float:
    """DoRA keeps the base and adapter outputs of every adapted layer for its magnitude rescaling."""
    if not recipe.method.uses_dora or not shape.layers:
        return 0.0
    return 2.0 * sum(lin.out_features for lin in shape.adapted) / shape.layers


def _weight_sized(recipe: "Recipe", shape: "ModelShape") -> float:
    """Elements of weight-sized tensors built per step (not per token)."""
    method = recipe.method
    if method.weight_sized_update:
        return method.weight_sized_update * sum(lin.in_features * lin.out_features for lin in shape.adapted)
    if method.uses_dora:
        return float(sum(lin.in_features ** 2 for lin in shape.adapted))  # peft multiplies lora_A by eye(in)
    return 0.0
