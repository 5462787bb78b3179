"""`revo publish` reads each CI's own variables (the real names each CI documents); the
events they make are valid bodies of POST /v1/ci/events. (GitHub Actions and GitLab CI are
also run end to end against a gateway in services/chat-gateway/tests/test_ci_events_api.py.)"""

from __future__ import annotations

import gzip
import json

import msgspec

from revo_cli.main import parser
from revo_cli.publish import encode_body, from_environment, from_flags
from revo_contracts.gateway_http import CI_EVENT_MAX_BYTES, CiEventBody

BUILDKITE = {
    "BUILDKITE": "true",
    "BUILDKITE_ORGANIZATION_SLUG": "acme",
    "BUILDKITE_PIPELINE_SLUG": "shop",
    "BUILDKITE_PIPELINE_NAME": "Shop",
    "BUILDKITE_REPO": "git@github.com:acme/shop.git",
    "BUILDKITE_COMMIT": "e" * 40,
    "BUILDKITE_BRANCH": "main",
    "BUILDKITE_BUILD_ID": "0190-build",
    "BUILDKITE_BUILD_URL": "https://buildkite.com/acme/shop/builds/88",
    "BUILDKITE_JOB_ID": "0190-job",
    "BUILDKITE_LABEL": ":pytest: unit",
    "BUILDKITE_PULL_REQUEST": "false",
    "BUILDKITE_RETRY_COUNT": "1",
}
JENKINS = {
    "JENKINS_URL": "https://jenkins.example/",
    "JOB_NAME": "shop/main",
    "BUILD_NUMBER": "311",
    "BUILD_URL": "https://jenkins.example/job/shop/job/main/311/",
    "GIT_COMMIT": "f" * 40,
    "GIT_BRANCH": "origin/main",
    "GIT_URL": "https://git.example/acme/shop.git",
}


def body_of(event: dict) -> CiEventBody:
    return msgspec.convert({"status": "failure", **event}, CiEventBody)


def test_buildkite():
    body = body_of(from_environment(BUILDKITE))

    assert body.provider == "buildkite"
    assert body.repository.full_name == "acme/shop"
    assert body.repository.url == "git@github.com:acme/shop.git"
    assert (body.commit_sha, body.branch) == ("e" * 40, "main")
    assert body.pr_number is None  # "false": not a pull request
    assert (body.workflow, body.workflow_id) == ("Shop", "0190-build")
    assert (body.job, body.job_id, body.run_attempt) == (":pytest: unit", "0190-job", 2)
    assert body.job_url == "https://buildkite.com/acme/shop/builds/88#0190-job"


def test_jenkins():
    body = body_of(from_environment(JENKINS))

    assert body.provider == "jenkins"
    assert body.repository.full_name == "acme/shop"
    assert (body.commit_sha, body.branch) == ("f" * 40, "main")
    assert (body.job, body.job_id) == ("shop/main", "shop/main#311")
    assert body.url == "https://jenkins.example/job/shop/job/main/311/"


def test_a_github_pull_request_names_its_head_branch_and_number():
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_REF": "refs/pull/42/merge",
        "GITHUB_REF_NAME": "42/merge",
        "GITHUB_HEAD_REF": "fix-cart",
        "GITHUB_RUN_ID": "5",
    }
    body = body_of(from_environment(env))

    assert (body.pr_number, body.branch) == (42, "fix-cart")
    assert body.repository.url == "https://github.com/acme/shop"


def test_no_ci_no_fields_and_flags_win():
    assert from_environment({"HOME": "/root"}) == {}
    args = parser().parse_args(
        ["publish", "--status", "failure", "--repo", "https://git.example/a/b.git", "--pr", "3"]
    )
    event = {**from_environment(JENKINS), **from_flags(args)}

    assert event["repository"] == {"url": "https://git.example/a/b.git", "full_name": "a/b"}
    assert event["pr_number"] == 3
    assert event["provider"] == "jenkins"


def test_a_log_too_long_for_the_body_keeps_its_head_and_tail():
    log = b"first line\n" + b"\x01" * (20 * 1024 * 1024) + b"\nlast line\n"  # escaped 6x

    raw = gzip.decompress(encode_body({"status": "failure"}, log))

    assert len(raw) <= CI_EVENT_MAX_BYTES
    text = json.loads(raw)["log"]
    assert text.startswith("first line\n") and text.endswith("\nlast line\n")
    assert "revo cut" in text
