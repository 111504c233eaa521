"""Base models, tokenizers, the built-in tiny Phi-3, and method -> PEFT wiring."""


def base_of(model):
    """The Hugging Face model inside a PEFT wrapper (anything with `get_base_model`), else `model`."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model
