"""Base models, tokenizers, the built-in tiny Phi-3, and method -> PEFT wiring."""
