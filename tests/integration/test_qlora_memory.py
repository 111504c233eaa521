"""QLoRA saves memory for real: the fp32 checkpoint is never mapped or held, so a QLoRA training
process peaks below a LoRA one by (most of) the difference between fp32 and nf4 weights.

The 814 M-param version of this comparison is benchmarks/qlora_memory.py (README: QLoRA memory)."""

from __future__ import annotations

import sys

import pytest

from phitune.recipe.load import load_recipe

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps and ru_maxrss")


def _mapped(path: str) -> int:
    with open("/proc/self/maps") as maps:
        return sum(path in line for line in maps)


def test_quantized_load_leaves_no_mapping_of_the_checkpoint(tiny_model_dir):
    from phitune.models.build import base_model_kwargs
    from phitune.models.loader import load_base_model
    from phitune.models.quantize import load_quantized_model

    recipe = load_recipe({"data": {"train": "t"}, "method": {"type": "qlora"}})
    checkpoint = str(tiny_model_dir / "model.safetensors")
    # other tests in this process may still hold models mapping the same file: compare against that
    already = _mapped(checkpoint)
    ours = load_quantized_model(recipe.model, **base_model_kwargs(recipe))
    assert ours.is_loaded_in_4bit and _mapped(checkpoint) == already
    # transformers' own quantized load keeps the whole fp32 file mapped (what phitune avoids)
    theirs = load_base_model(recipe.model, **base_model_kwargs(recipe))
    assert theirs.is_loaded_in_4bit and _mapped(checkpoint) >= already + 1


@pytest.mark.slow
def test_qlora_training_peaks_below_lora_by_the_quantized_weights(tmp_path):
    from phitune.estimate.measure import measure_training_peak
    from phitune.estimate.shapes import model_shape
    from phitune.estimate.zero import quantized_weight_bytes
    from phitune.models.tiny import TinySpec, build_tiny_model

    # hidden 1024 x 4 layers: 67 M quantizable weights, 268 MB in fp32 and 36 MB in nf4, a margin
    # far above the few MB by which peak RSS varies between runs.
    model = build_tiny_model(tmp_path / "h1024", TinySpec(hidden=1024, layers=4, heads=8))
    peaks, shape = {}, None
    for method in ("lora", "qlora"):
        recipe = load_recipe({"data": {"train": "t"}, "model": str(model), "method": {"type": method},
                              "tracking": "none"})
        shape = shape or model_shape(recipe)
        peaks[method] = measure_training_peak(recipe, batch=1, seq=32, steps=1)
    fp32 = shape.quantizable_params * 4.0
    nf4 = quantized_weight_bytes(shape.quantizable_params, shape.quantized_rows, 4, True)
    saving = peaks["lora"]["peak_rss"] - peaks["qlora"]["peak_rss"]
    assert saving > 0.5 * (fp32 - nf4), (peaks, fp32 - nf4)
