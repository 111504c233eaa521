"""A QLoRA model whose `merge_and_unload` merges into the full-precision base.

peft's own merge on a bitsandbytes base dequantizes each weight, adds the update and quantizes the
sum again: the result is still a 4-bit bitsandbytes model (which exporters cannot read) and the
re-quantization rounds most of the update away (measured on the tiny Phi-3: logits 0.1 away from the
trained model). Merging the adapter into the base loaded in `model.dtype` is what a QLoRA run's
merged/ must be. Training, saving the adapter and reloading it are peft's, unchanged.
"""

from __future__ import annotations

from peft import PeftModelForCausalLM

from phitune.models.quantize import SPEC_ATTRIBUTE


class QloraCausalLM(PeftModelForCausalLM):
    def merge_and_unload(self, *args, **kwargs):
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        from phitune.models.loader import load_base_model

        spec = getattr(self.get_base_model(), SPEC_ATTRIBUTE, None)
        if spec is None:  # not loaded by phitune: peft's behaviour
            return super().merge_and_unload(*args, **kwargs)
        full = PeftModelForCausalLM(load_base_model(spec), self.active_peft_config)
        set_peft_model_state_dict(full, get_peft_model_state_dict(self))
        return full.merge_and_unload(*args, **kwargs)
