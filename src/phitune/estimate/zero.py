"""Model-state memory per device: the ZeRO paper's formulas, and the frozen/quantized base of
adapter methods. Pure arithmetic (no torch), bytes everywhere.

ZeRO (Rajbhandari et al. 2020, section 5): mixed-precision Adam keeps 2 bytes of fp16/bf16 weights,
2 of gradients and K = 12 of optimizer state (fp32 master weights, momentum, variance) per
parameter. With Nd data-parallel devices:
    stage 0  (2 + 2 + K) Ψ            stage 2  2Ψ + (2 + K) Ψ / Nd
    stage 1  2Ψ + 2Ψ + K Ψ / Nd       stage 3  (2 + 2 + K) Ψ / Nd
e.g. Ψ = 7.5 B, Nd = 64: 120 GB, 31.4 GB, 16.6 GB, 1.9 GB.

QLoRA (Dettmers et al. 2023): 4-bit weights in blocks of 64 with an fp32 absmax per block
(0.5 + 4/64 bytes per parameter); double quantization stores the absmax in 8 bits with an fp32
constant per 256 blocks (0.5 + 1/64 + 4/(64*256)). LLM.int8 keeps 1 byte per weight plus an fp32
scale per output row.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9  # decimal, as in the ZeRO paper
ADAM_MIXED_K = 12
BLOCK = 64
DOUBLE_QUANT_GROUP = 256


@dataclass(frozen=True)
class StateBytes:
    weights: float
    gradients: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer

    def __add__(self, other: "StateBytes") -> "StateBytes":
        return StateBytes(self.weights + other.weights, self.gradients + other.gradients,
                          self.optimizer + other.optimizer)


def trainable_states(params: float, devices: int, stage: int, weight_bytes: float, grad_bytes: float,
                     optimizer_bytes: float) -> StateBytes:
    """Per-device bytes of parameters that train: ZeRO shards optimizer states from stage 1,
    gradients from stage 2, the weights themselves at stage 3."""
    _check(devices, stage)
    return StateBytes(
        weights=params * weight_bytes / (devices if stage >= 3 else 1),
        gradients=params * grad_bytes / (devices if stage >= 2 else 1),
        optimizer=params * optimizer_bytes / (devices if stage >= 1 else 1),
    )


def frozen_weights(total_bytes: float, devices: int, stage: int) -> float:
    """Per-device share of weights that do not train (no gradients, no optimizer state): only
    ZeRO-3 shards them."""
    _check(devices, stage)
    return total_bytes / (devices if stage >= 3 else 1)


def zero_paper_bytes(params: float, devices: int, stage: int, k: float = ADAM_MIXED_K) -> float:
    """The paper's per-device model-state memory for mixed-precision training (2 + 2 + K bytes)."""
    return trainable_states(params, devices, stage, 2, 2, k).total


def quantized_weight_bytes(params: float, rows: int, bits: int, double_quant: bool) -> float:
    """Bytes of bitsandbytes-quantized linear weights, quantization constants included."""
    if bits == 8:
        return params * 1.0 + rows * 4.0
    if double_quant:
        return params * (0.5 + 1.0 / BLOCK + 4.0 / (BLOCK * DOUBLE_QUANT_GROUP))
    return params * (0.5 + 4.0 / BLOCK)


def _check(devices: int, stage: int) -> None:
    if devices < 1:
        raise ValueError(f"devices must be >= 1, got {devices}")
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"ZeRO stage must be 0-3, got {stage}")
