"""Prompt tuning whose outputs line up with the caller's tokens.

peft's prompt tuning prepends `num_virtual_tokens` embeddings to every sequence, so the model's
logits have V extra positions in front. phitune's loss (phitune.models.loss) asks for logits only at
label positions with a boolean `logits_to_keep` mask shaped like `input_ids`; this subclass widens
that mask with V `False` columns, and strips the V virtual positions from full logits, so the
training loop needs no method-specific code. Saving, loading (`PeftModel.from_pretrained`) and
`generate` are peft's own and unchanged.
"""

from __future__ import annotations

from peft import PeftModelForCausalLM


class PromptTuningCausalLM(PeftModelForCausalLM):
    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, **kwargs):
        import torch

        virtual = self.active_peft_config.num_virtual_tokens
        keep = kwargs.get("logits_to_keep")
        if isinstance(keep, torch.Tensor) and keep.dtype == torch.bool and keep.ndim == 2:
            kwargs["logits_to_keep"] = torch.cat([keep.new_zeros(keep.shape[0], virtual), keep], dim=1)
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                              labels=labels, **kwargs)
        tokens = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        logits = getattr(out, "logits", None)
        if logits is not None and logits.dim() == 3 and logits.shape[1] == tokens + virtual:
            out.logits = logits[:, virtual:]
        return out
