"""Generate proto/: one JSON Schema per message and an AsyncAPI document of the subjects.

`python -m revo_contracts.proto [--check]` (what `make proto` runs). With --check it
writes nothing and exits 1 when proto/ differs from what the Structs say.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from revo_contracts.catalog import CHANNELS, Channel, message_schema, message_types

ASYNCAPI_FILE = "asyncapi.json"


def render() -> dict[str, str]:
    """File name -> content of every file proto/ should hold."""
    files = {
        f"schemas/{name}.schema.json": _dump(message_schema(name, kind))
        for name, kind in message_types().items()
    }
    files[ASYNCAPI_FILE] = _dump(asyncapi())
    return files


def asyncapi() -> dict[str, Any]:
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "revo",
            "version": "0.1.0",
            "description": "Every NATS subject of revo and the messages on it (JSON).",
        },
        "defaultContentType": "application/json",
        "channels": {_channel_id(c): _channel(c) for c in CHANNELS},
        "operations": {_channel_id(c): _operation(c) for c in CHANNELS},
        "components": {
            "messages": {
                name: {"payload": {"$ref": f"schemas/{name}.schema.json"}}
                for name in message_types()
            }
        },
    }


def _channel_id(channel: Channel) -> str:
    return channel.address.replace(".", "_").replace("{", "").replace("}", "")


def _channel(channel: Channel) -> dict[str, Any]:
    names = [channel.sends, *channel.replies]
    return {
        "address": channel.address,
        "description": channel.description,
        "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
    }


def _operation(channel: Channel) -> dict[str, Any]:
    ref = f"#/channels/{_channel_id(channel)}"
    operation: dict[str, Any] = {
        "action": "receive",
        "channel": {"$ref": ref},
        "messages": [{"$ref": f"{ref}/messages/{channel.sends}"}],
    }
    if channel.replies:
        operation["reply"] = {
            "messages": [{"$ref": f"{ref}/messages/{r}"} for r in channel.replies],
        }
        operation["x-revo-streamed-reply"] = channel.reply_is_stream
    return operation


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(_canonical(document), indent=2, sort_keys=True) + "\n"


# Bounds of a float field, always written as floats: typing caches `Annotated` types by
# equality, and Meta(gt=0, le=1) == Meta(gt=0.0, le=1.0), so which spelling a schema gets
# depended on which module's annotation was evaluated first (the suite's order decided it).
_NUMBER_BOUNDS = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
)


def _canonical(node: Any) -> Any:
    """The schema as written to proto/, whatever the installed msgspec and import order.

    Docstrings are dedented here, not by msgspec: its releases differ (0.19 kept the
    indentation, 0.23 strips it). Bounds of `number` fields are floats (see above)."""
    if isinstance(node, dict):
        number = node.get("type") == "number"
        return {key: _canonical_value(key, value, number) for key, value in node.items()}
    if isinstance(node, list):
        return [_canonical(item) for item in node]
    return node


def _canonical_value(key: str, value: Any, in_number: bool) -> Any:
    if key == "description" and isinstance(value, str):
        return inspect.cleandoc(value)
    if in_number and key in _NUMBER_BOUNDS and isinstance(value, int):
        return float(value)
    return _canonical(value)


def stale_files(proto_dir: Path) -> list[str]:
    """Files that are missing, different or no longer generated."""
    expected = render()
    actual = {str(p.relative_to(proto_dir)): p.read_text() for p in proto_dir.rglob("*.json")}
    return sorted(
        name for name in expected.keys() | actual.keys() if expected.get(name) != actual.get(name)
    )


def write(proto_dir: Path) -> None:
    files = render()  # before deleting anything: a broken contract leaves proto/ as it was
    for stale in proto_dir.rglob("*.json"):
        stale.unlink()
    for name, content in files.items():
        path = proto_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("proto"))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        stale = stale_files(args.dir)
        for name in stale:
            print(f"out of date: {args.dir / name}")
        return 1 if stale else 0
    write(args.dir)
    print(f"wrote {len(render())} files to {args.dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
