"""The price table: what a token costs on each model, as an exact integer of pico-dollars.

Cloud models are priced per 1M input and output tokens, with at most six decimals, so a
token's price in pico-dollars (USD x 10^12) is an integer and every cost is exact. A local
model's price is derived from what its GPU costs per hour and the throughput measured on
it: gpu_hourly_usd / 3600 / tokens_per_s per token, rounded to a whole pico-dollar (a
millionth of a dollar per 1M tokens). A table is validated whole: any error rejects it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from revo_cost_ledger.money import PICO_PER_USD

PER_MILLION = 1_000_000
_TOP_KEYS = {"reference", "reference_embed", "cloud", "local", "local_default"}
_CLOUD_KEYS = {"input_per_1m", "output_per_1m"}
_LOCAL_KEYS = {"gpu_hourly_usd", "output_tokens_per_s", "input_tokens_per_s"}


class PriceTableError(ValueError):
    """A table that cannot be used; `problems` lists every error found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"price table {source} rejected: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Price:
    """Pico-dollars per input (prompt) token and per output (completion) token."""

    input_pico: int
    output_pico: int

    def cost(self, prompt_tokens: int, completion_tokens: int) -> int:
        return prompt_tokens * self.input_pico + completion_tokens * self.output_pico


@dataclass(frozen=True)
class PriceTable:
    reference: str
    reference_embed: str
    cloud: dict[str, Price]
    local: dict[str, Price]
    local_default: Price | None = None
    version: str = ""
    path: str = ""
    loaded_at: float = 0.0
    _cache: dict[tuple[str, str], Price | None] = field(default_factory=dict, compare=False)

    def price(self, provider: str, model: str) -> Price | None:
        """The price of a model as served by `provider` ("local" or a cloud provider's
        name); None when the table does not know it."""
        key = (provider, model)
        if key not in self._cache:
            if provider == "local":
                self._cache[key] = self.local.get(model, self.local_default)
            else:
                self._cache[key] = self.cloud.get(model)
        return self._cache[key]

    def reference_price(self, kind: str) -> Price:
        return self.cloud[self.reference_embed if kind == "embed" else self.reference]


def load_price_table(path: Path, loaded_at: float = 0.0) -> PriceTable:
    """Read and validate a table; raises PriceTableError (or OSError) and changes nothing."""
    data = path.read_bytes()
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise PriceTableError(str(path), [f"not YAML: {exc}"]) from None
    table = parse_price_table(document, str(path))
    version = hashlib.sha256(data).hexdigest()[:12]
    return PriceTable(
        reference=table.reference,
        reference_embed=table.reference_embed,
        cloud=table.cloud,
        local=table.local,
        local_default=table.local_default,
        version=version,
        path=str(path),
        loaded_at=loaded_at,
    )


def parse_price_table(document: Any, source: str = "<table>") -> PriceTable:
    problems: list[str] = []
    if not isinstance(document, dict):
        raise PriceTableError(source, ["the table must be a mapping"])
    problems += [f"unknown key {key!r}" for key in sorted(set(document) - _TOP_KEYS, key=str)]
    cloud = _section(document, "cloud", _cloud_price, problems)
    local = _section(document, "local", _local_price, problems)
    local_default = None
    if document.get("local_default") is not None:
        local_default = _local_price("local_default", document["local_default"], problems)
    reference = _reference(document, "reference", cloud, problems, required=True)
    reference_embed = _reference(document, "reference_embed", cloud, problems) or reference
    if problems:
        raise PriceTableError(source, problems)
    return PriceTable(reference, reference_embed, cloud, local, local_default)


def _section(document: dict, name: str, parse: Any, problems: list[str]) -> dict[str, Price]:
    entries = document.get(name) or {}
    if not isinstance(entries, dict):
        problems.append(f"{name}: must map model names to prices")
        return {}
    prices = {}
    for model, entry in entries.items():
        if not isinstance(model, str) or not model.strip():
            problems.append(f"{name}: model name {model!r} must be a non-empty string")
            continue
        price = parse(f"{name}.{model}", entry, problems)
        if price is not None:
            prices[model] = price
    return prices


def _reference(
    document: dict, key: str, cloud: dict[str, Price], problems: list[str], required: bool = False
) -> str:
    name = document.get(key)
    if name is None:
        if required:
            problems.append(f"{key}: missing (the cloud model of the cloud-equivalent cost)")
        return ""
    if name not in cloud:
        problems.append(f"{key}: {name!r} is not a model of the cloud section")
    return str(name)


def _cloud_price(where: str, entry: Any, problems: list[str]) -> Price | None:
    before = len(problems)
    if not _fields_ok(where, entry, _CLOUD_KEYS, _CLOUD_KEYS, problems):
        return None
    found = {
        key: _usd_per_million(f"{where}.{key}", entry[key], problems)
        for key in sorted(_CLOUD_KEYS & set(entry))
    }
    if len(problems) > before:
        return None
    return Price(found["input_per_1m"], found["output_per_1m"])  # type: ignore[arg-type]


def _usd_per_million(where: str, value: Any, problems: list[str]) -> int | None:
    """USD per 1M tokens -> pico-dollars per token (exact: at most six decimals)."""
    amount = _decimal(where, value, problems)
    if amount is None:
        return None
    per_token = amount * PICO_PER_USD / PER_MILLION
    if per_token != per_token.to_integral_value():
        problems.append(f"{where}: {value} has more than six decimals")
        return None
    return int(per_token)


def _local_price(where: str, entry: Any, problems: list[str]) -> Price | None:
    before = len(problems)
    if not _fields_ok(where, entry, {"gpu_hourly_usd"}, _LOCAL_KEYS, problems):
        return None
    hourly = None
    if "gpu_hourly_usd" in entry:
        hourly = _decimal(f"{where}.gpu_hourly_usd", entry["gpu_hourly_usd"], problems)
    output_tps = _throughput(f"{where}.output_tokens_per_s", entry, problems)
    input_tps = _throughput(f"{where}.input_tokens_per_s", entry, problems)
    if output_tps is None and input_tps is None and len(problems) == before:
        problems.append(f"{where}: needs output_tokens_per_s or input_tokens_per_s (measured)")
    if len(problems) > before or hourly is None:
        return None
    return Price(
        input_pico=_per_token(hourly, input_tps or output_tps),
        output_pico=_per_token(hourly, output_tps or input_tps),
    )


def _throughput(where: str, entry: dict, problems: list[str]) -> Decimal | None:
    """The measured tokens/s; None when absent (or invalid, with a problem added)."""
    value = entry.get(where.rsplit(".", 1)[1])
    if value is None:
        return None
    amount = _decimal(where, value, problems)
    if amount is not None and amount == 0:
        problems.append(f"{where}: must be above 0")
        return None
    return amount


def _per_token(hourly_usd: Decimal, tokens_per_s: Decimal | None) -> int:
    assert tokens_per_s is not None
    return int((hourly_usd * PICO_PER_USD / 3600 / tokens_per_s).to_integral_value())


def _fields_ok(
    where: str, entry: Any, required: set[str], allowed: set[str], problems: list[str]
) -> bool:
    """Whether `entry` is a mapping; missing and unknown keys are added to `problems`, and
    the caller still checks the values that are there, so that all errors are named."""
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a mapping of {', '.join(sorted(allowed))}")
        return False
    problems += [f"{where}: missing {key}" for key in sorted(required - set(entry))]
    problems += [f"{where}: unknown key {key!r}" for key in sorted(set(entry) - allowed, key=str)]
    return True


def _decimal(where: str, value: Any, problems: list[str]) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.append(f"{where}: {value!r} is not a number")
        return None
    try:
        # Through str: YAML's 0.15 is a float, and Decimal(0.15) is not 0.15.
        amount = Decimal(str(value))
    except InvalidOperation:
        problems.append(f"{where}: {value!r} is not a number")
        return None
    if not amount.is_finite() or amount < 0:
        problems.append(f"{where}: {value} must be a finite number >= 0")
        return None
    return amount
