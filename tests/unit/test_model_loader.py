"""Model sources: built-in, local folder, and an Azure ML registry (MLflow) model folder."""

from __future__ import annotations

import shutil

import pytest

from phitune.errors import ModelError
from phitune.models.loader import load_base_model, load_tokenizer, resolve_model_path
from phitune.recipe.sections import ModelSpec


def test_mlflow_registry_layout_resolves_to_the_hf_folder(tiny_model_dir, tmp_path):
    # Azure ML registry models mount as: MLmodel, data/model/ (weights, config), data/tokenizer/
    root = tmp_path / "mlflow_model"
    (root / "data").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors:\n  transformers: {}\n")
    shutil.copytree(tiny_model_dir, root / "data" / "model", ignore=shutil.ignore_patterns("tokenizer*", "chat_template*"))
    shutil.copytree(tiny_model_dir, root / "data" / "tokenizer", ignore=shutil.ignore_patterns("*.safetensors", "config.json"))
    spec = ModelSpec(name=str(root))
    assert resolve_model_path(spec) == str((root / "data" / "model").resolve())
    tok = load_tokenizer(spec)
    model = load_base_model(spec)
    assert tok.chat_template and model.config.vocab_size >= len(tok)


def test_registry_uri_cannot_load_locally_and_says_why():
    with pytest.raises(ModelError, match="Azure ML registry"):
        resolve_model_path(ModelSpec(name="azureml://registries/azureml/models/Phi-3-mini-4k-instruct/labels/latest"))


def test_mlflow_folder_without_model_is_a_clear_error(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(ModelError, match="no Hugging Face model inside"):
        resolve_model_path(ModelSpec(name=str(tmp_path)))
