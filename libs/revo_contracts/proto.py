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
    return json.dumps(_clean_descriptions(document), indent=2, sort_keys=True) + "\n"


def _clean_descriptions(node: Any) -> Any:
    """Docstrings dedented here, not by msgspec: its releases differ (0.19 kept the
    indentation, 0.23 strips it), and proto/ must not change with the installed version."""
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else _clean_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_clean_descriptions(item) for item in node]
    return node


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
