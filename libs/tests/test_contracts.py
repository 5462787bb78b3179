"""Contracts: proto/ matches the Structs; subjects are built safely; evolution rules hold."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from revo_contracts import subjects
from revo_contracts.catalog import MESSAGES
from revo_contracts.inference import ChatRequest
from revo_contracts.proto import _canonical, stale_files

PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"


def test_proto_directory_matches_the_contract_structs():
    stale = stale_files(PROTO_DIR)
    assert not stale, f"proto/ is out of date, run `make proto`: {stale}"


def test_float_bounds_are_written_alike_however_typing_cached_them():
    # Meta(gt=0) and Meta(gt=0.0) are equal, so typing's cache may hand either to a schema.
    number = {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1}
    integer = {"type": "integer", "minimum": 1, "maximum": 64}

    assert _canonical({"properties": {"p": number, "n": integer}}) == {
        "properties": {
            "p": {"type": "number", "exclusiveMinimum": 0.0, "maximum": 1.0, "default": 1},
            "n": integer,
        }
    }


def test_the_drift_check_notices_a_changed_schema(tmp_path):
    import shutil

    shutil.copytree(PROTO_DIR, tmp_path / "proto")
    (tmp_path / "proto" / "schemas" / "ChatRequest.schema.json").write_text("{}\n")

    assert stale_files(tmp_path / "proto") == ["schemas/ChatRequest.schema.json"]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.__name__)
def test_every_field_added_after_the_required_core_has_a_default(message):
    # New fields must have defaults; the required core is what a message cannot be without.
    required = [f.name for f in msgspec.structs.fields(message) if f.required]
    assert len(required) <= 6, f"{message.__name__} requires {required}"


def test_unknown_fields_on_the_wire_are_tolerated():
    payload = (
        b'{"messages":[{"role":"user","content":"hi"}],"tenant":"a",'
        b'"request_id":"r1","added_in_v9":true}'
    )
    assert msgspec.json.decode(payload, type=ChatRequest).tenant == "a"


@pytest.mark.parametrize("bad", ["a.b", "*", ">", "", "x" * 65, "t en"])
def test_a_tenant_that_is_not_a_single_subject_token_is_refused(bad):
    with pytest.raises(subjects.InvalidSubjectToken):
        subjects.usage(bad)


def test_subjects_are_built_from_tokens():
    assert subjects.usage("acme") == "usage.acme"
    assert subjects.runs_events("acme", "r-1") == "runs.events.acme.r-1"


def test_a_run_event_decodes_to_its_tagged_member():
    from revo_contracts.runs import RunEvent, ToolCalled

    event = msgspec.json.decode(
        b'{"type":"tool_called","run_id":"r1","tenant":"acme","seq":3,"ts":1.5,'
        b'"step":1,"call_id":"c1","tool":"read_file","arguments":{"path":"README.md"}}',
        type=RunEvent,
    )

    assert isinstance(event, ToolCalled)
    assert event.arguments == {"path": "README.md"}


def test_an_unknown_run_event_type_is_refused():
    from revo_contracts.runs import RunEvent

    with pytest.raises(msgspec.ValidationError, match="Invalid value 'exploded'"):
        msgspec.json.decode(
            b'{"type":"exploded","run_id":"r1","tenant":"a","seq":1,"ts":0}', type=RunEvent
        )


def test_run_control_messages_round_trip():
    from revo_contracts.runs import Answer, Cancel, RunControl

    for message in (Cancel(reason="user pressed stop"), Answer(text="yes")):
        assert msgspec.json.decode(msgspec.json.encode(message), type=RunControl) == message
