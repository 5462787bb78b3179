"""The models config file: which local models to load and what they cost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import yaml
from msgspec import Meta

DEFAULT_MODELS_FILE = Path(__file__).with_name("models.yaml")


class ModelSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:/-]{1,128}$")]
    kind: Literal["chat", "embed"]
    # A model directory, a Hugging Face id vLLM can load, or "embedded".
    path: str
    max_context: Annotated[int, Meta(ge=16)]
    price_per_1m_tokens: Annotated[float, Meta(ge=0)] = 0.0
    aliases: list[str] = []
    dtype: str = "auto"
    kv_cache_gb: Annotated[float, Meta(gt=0)] = 1.0
    gpu_memory_utilization: Annotated[float, Meta(gt=0, le=1)] = 0.85
    # CUDA graphs and torch.compile speed up GPUs but cost start-up time; CPU runs eager.
    enforce_eager: bool = True


class ModelsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    models: Annotated[list[ModelSpec], Meta(min_length=1)]


class ConfigError(ValueError):
    """The models file is missing or invalid; the message names the file and field."""


def load_models_config(path: Path) -> ModelsConfig:
    try:
        raw = yaml.safe_load(path.read_text())
        config = msgspec.convert(raw, ModelsConfig)
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
        raise ConfigError(f"models config {path}: {exc}") from None
    _check_unique_names(config, path)
    return config


def _check_unique_names(config: ModelsConfig, path: Path) -> None:
    seen: set[str] = set()
    for model in config.models:
        if model.name in seen:
            raise ConfigError(f"models config {path}: model {model.name!r} is listed twice")
        seen.add(model.name)
