"""The models config file: which local models to load, which cloud providers may take
over (none by default), and how the router chooses between them."""

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
    # Chat models: vLLM's dtype. Embedding models: auto (bfloat16 where the CPU has it
    # natively, else float32), float32 or bfloat16.
    dtype: str = "auto"
    kv_cache_gb: Annotated[float, Meta(gt=0)] = 1.0
    gpu_memory_utilization: Annotated[float, Meta(gt=0, le=1)] = 0.85
    # CUDA graphs and torch.compile speed up GPUs but cost start-up time; CPU runs eager.
    enforce_eager: bool = True
    # false: listed (and routable to its cloud fallbacks) but not loaded on this replica.
    load: bool = True
    # Cloud models (by name) that take this model's requests when it cannot, in order.
    fallback: list[str] = []
    # Requests the engine runs at once before the next one waits (for the TTFT estimate).
    batch_slots: Annotated[int, Meta(ge=1)] = 16


Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:/-]{1,128}$")]


class CloudModelSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A model a provider serves. `name` is revo's name for it (the price table's key);
    `model` the provider's own name, when it differs."""

    name: Name
    model: str | None = None
    aliases: list[str] = []
    max_context: Annotated[int, Meta(ge=16)] = 128_000

    @property
    def upstream_name(self) -> str:
        return self.model or self.name


class ProviderSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An OpenAI-compatible chat-completions endpoint (OpenAI, Anthropic's compatible API,
    a remote `vllm serve`). The key is read from `api_key_env` or `api_key_file`, never
    written here."""

    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    base_url: str
    models: Annotated[list[CloudModelSpec], Meta(min_length=1)]
    api_key_env: str | None = None
    api_key_file: str | None = None
    connect_timeout_s: Annotated[float, Meta(gt=0)] = 5.0
    # Until the first token; then between two chunks of the stream.
    first_token_timeout_s: Annotated[float, Meta(gt=0)] = 30.0
    idle_timeout_s: Annotated[float, Meta(gt=0)] = 30.0
    # A provider that failed is skipped this long.
    cooldown_s: Annotated[float, Meta(ge=0)] = 30.0


class TenantPolicy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # "allow": cloud when local cannot serve (within the ledger's budget); "deny": local only.
    cloud: Literal["allow", "deny"] = "deny"


class RoutingSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Spill to cloud when the local queue would make the first token later than this.
    ttft_target_ms: Annotated[float, Meta(gt=0)] | None = None
    default_policy: TenantPolicy = msgspec.field(default_factory=TenantPolicy)
    tenants: dict[str, TenantPolicy] = {}
    ledger_timeout_s: Annotated[float, Meta(gt=0)] = 2.0

    def policy(self, tenant: str) -> TenantPolicy:
        return self.tenants.get(tenant, self.default_policy)


class ModelsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    models: Annotated[list[ModelSpec], Meta(min_length=1)]
    providers: list[ProviderSpec] = []
    routing: RoutingSpec = msgspec.field(default_factory=RoutingSpec)


class ConfigError(ValueError):
    """The models file is missing or invalid; the message names the file and field."""


def load_models_config(path: Path) -> ModelsConfig:
    try:
        raw = yaml.safe_load(path.read_text())
        config = msgspec.convert(raw, ModelsConfig)
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
        raise ConfigError(f"models config {path}: {exc}") from None
    _check_unique_names(config, path)
    _check_fallbacks(config, path)
    return config


def _check_unique_names(config: ModelsConfig, path: Path) -> None:
    seen: set[str] = set()
    for model in config.models:
        if model.name in seen:
            raise ConfigError(f"models config {path}: model {model.name!r} is listed twice")
        seen.add(model.name)


def _check_fallbacks(config: ModelsConfig, path: Path) -> None:
    cloud = {m.name for p in config.providers for m in p.models}
    for model in config.models:
        unknown = sorted(set(model.fallback) - cloud)
        if unknown:
            raise ConfigError(
                f"models config {path}: model {model.name!r} falls back to {unknown}, "
                "which no provider serves"
            )
