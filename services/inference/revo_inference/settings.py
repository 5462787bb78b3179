"""Settings of the inference service (env prefix REVO_INFERENCE_)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from revo_core.settings import ServiceSettings
from revo_inference.config import DEFAULT_MODELS_FILE


class InferenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REVO_INFERENCE_", extra="ignore")

    http_port: int = 8101
    models_file: Path = DEFAULT_MODELS_FILE
    # Requests handled at once by this replica; beyond it callers get `overloaded`.
    max_in_flight: int = 256
    # A stream with no caller (no cancel, no answer to pings) is stopped after this.
    ping_interval_s: float = 2.0
    # Embedding forward passes run side by side, one core each (the vLLM engine has its
    # own process).
    embed_threads: int = 2
