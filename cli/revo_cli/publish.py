"""`revo publish`: the one-line CI step that tells revo how a job ended, with its log.

  revo publish --status failure --log build.log [--repo URL --commit SHA --branch B
               --job NAME --workflow W --provider P --url U --pr N --event-id ID]

What the flags leave out is read from the CI's own environment (GitHub Actions, GitLab CI,
Buildkite, Jenkins); a flag always wins. It talks HTTP to the chat gateway's
`POST /v1/ci/events` (REVO_URL, default http://127.0.0.1:8080) with REVO_API_KEY (a key
with the `ci` role), the body gzip-compressed, so a CI runner needs no NATS access.

Exit status: 0 accepted (or already accepted: a retry); 1 refused by the gateway (bad
key, role, body); 2 bad usage (no key, unreadable log); 3 the gateway could not be reached
or was unavailable, after retries (a CI step may choose to ignore 3 alone).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
import typing
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping

from revo_contracts.ci import CiStatus
from revo_contracts.gateway_http import CI_EVENT_MAX_BYTES
from revo_core.ci_logs import clip

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
DEFAULT_URL = "http://127.0.0.1:8080"
ROUTE = "/v1/ci/events"
STATUSES = typing.get_args(CiStatus)
# Room in the body for the event's other fields and JSON's escapes of the log.
_BODY_MARGIN = 256 * 1024
# Unreachable or 5xx: tried this many times in all, waiting 1 s, 2 s, 4 s between.
ATTEMPTS = 4
# Where a flag and an event field differ in name.
_FLAG_FIELDS = {
    "commit": "commit_sha",
    "pr": "pr_number",
    "job": "job",
    "workflow": "workflow",
    "branch": "branch",
    "provider": "provider",
    "url": "url",
    "job_url": "job_url",
    "event_id": "event_id",
}


def add_publish_parser(commands: argparse._SubParsersAction) -> None:
    publish = commands.add_parser(
        "publish", help="report a CI job's outcome and log to revo (POST /v1/ci/events)"
    )
    publish.add_argument("--status", required=True, choices=STATUSES)
    publish.add_argument("--log", help="the job's log file; - reads stdin")
    publish.add_argument("--repo", help="repository URL (or owner/name)")
    publish.add_argument("--commit", help="commit SHA")
    publish.add_argument("--branch")
    publish.add_argument("--job", help="job name")
    publish.add_argument("--workflow", help="workflow or pipeline name")
    publish.add_argument("--provider", help="github, gitlab, buildkite, jenkins, ... (a name)")
    publish.add_argument("--url", help="the pipeline's page")
    publish.add_argument("--job-url", help="the job's page")
    publish.add_argument("--pr", type=int, help="pull or merge request number")
    publish.add_argument("--event-id", help="default: derived from the CI's job id")
    publish.add_argument(
        "--revo-url", help=f"the chat gateway (default: REVO_URL or {DEFAULT_URL})"
    )
    publish.add_argument("--timeout", type=float, default=60.0, help="per attempt, seconds")


def publish_command(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    key = env.get("REVO_API_KEY", "").strip()
    if not key:
        return _fail(
            "error: REVO_API_KEY is not set: give the job a key with the ci role "
            "(`revo keys create --tenant T --role ci`)",
            EXIT_USAGE,
        )
    try:
        log = read_log(args.log)
    except OSError as exc:
        return _fail(f"error: cannot read the log {args.log}: {exc}", EXIT_USAGE)
    event = {**from_environment(env), **from_flags(args)}
    event["status"] = args.status
    event["finished_at"] = time.time()
    if not (event.get("event_id") or event.get("job_id") or event.get("workflow_id")):
        # Nothing names the job: one id for this command, so its own retries are one event.
        event["event_id"] = uuid.uuid4().hex
    url = (args.revo_url or env.get("REVO_URL") or DEFAULT_URL).rstrip("/") + ROUTE
    body = encode_body(event, log)
    return send(url, key, body, args.timeout)


def read_log(path: str | None) -> bytes | None:
    if path is None:
        return None
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as file:
        return file.read()


def encode_body(event: dict, log: bytes | None) -> bytes:
    """The event as gzip JSON, its log cut (head and tail kept) so the body fits the
    gateway's limit after decompression; bytes that are not UTF-8 become U+FFFD."""
    if log is None:
        return gzip.compress(_json(event))
    limit = CI_EVENT_MAX_BYTES - _BODY_MARGIN
    while True:
        text, _ = clip(log, limit)
        raw = _json({**event, "log": text.decode("utf-8", errors="replace")})
        if len(raw) <= CI_EVENT_MAX_BYTES:
            return gzip.compress(raw, compresslevel=6)
        # Escapes (control characters, U+FFFD for each stray byte) made it longer.
        limit = int(limit * CI_EVENT_MAX_BYTES / len(raw)) - _BODY_MARGIN


def _json(value: dict) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def send(url: str, key: str, body: bytes, timeout: float) -> int:
    delay = 1.0
    for attempt in range(1, ATTEMPTS + 1):
        outcome = _post(url, key, body, timeout)
        if outcome is not None:
            return outcome
        if attempt < ATTEMPTS:
            time.sleep(delay)
            delay *= 2
    return _fail(f"error: gave up after {ATTEMPTS} attempts", EXIT_UNREACHABLE)


def _post(url: str, key: str, body: bytes, timeout: float) -> int | None:
    """The exit status, or None to try again (unreachable, 5xx)."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Content-Encoding", "gzip")
    request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _accepted(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        message = _error_message(error)
        if error.code >= 500:
            print(f"revo at {url} answered {error.code}: {message}; retrying", file=sys.stderr)
            return None
        return _fail(f"error: revo refused the event ({error.code}): {message}", EXIT_REFUSED)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"cannot reach revo at {url}: {reason}; retrying", file=sys.stderr)
        return None


def _accepted(answer: dict) -> int:
    where = ""
    log = answer.get("log")
    if log:
        where = " (log inline)" if log.get("inline") else f" (log {log['ref']['name']})"
        if log.get("truncated"):
            where += ", log cut to its head and tail"
    again = " already" if answer.get("duplicate") else ""
    print(f"event {answer['event_id']}{again} published to {answer['subject']}{where}")
    return EXIT_OK


def _error_message(error: urllib.error.HTTPError) -> str:
    raw = error.read()
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace")[:200] or str(error.reason)


def _fail(message: str, status: int) -> int:
    print(message, file=sys.stderr, flush=True)
    return status


# -- what the flags say ----------------------------------------------------------------------


def from_flags(args: argparse.Namespace) -> dict:
    event: dict = {}
    for flag, field in _FLAG_FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            event[field] = value
    if args.repo:
        event["repository"] = repository_of(args.repo)
    return event


def repository_of(repo: str) -> dict[str, str]:
    """A URL gives both its own and its path as the full name; anything else is the name."""
    parsed = urllib.parse.urlparse(repo)
    if parsed.scheme and parsed.netloc:
        return {"url": repo, "full_name": parsed.path.strip("/").removesuffix(".git")}
    if repo.startswith("git@") and ":" in repo:  # git@host:owner/name.git
        return {"url": repo, "full_name": repo.split(":", 1)[1].removesuffix(".git")}
    return {"full_name": repo}


# -- what the CI's environment says ----------------------------------------------------------


def from_environment(env: Mapping[str, str]) -> dict:
    """The event's fields the CI running us tells in its variables (empty ones left out)."""
    for detect, read in _CIS:
        if detect(env):
            return {k: v for k, v in read(env).items() if v not in ("", None, {})}
    return {}


def _github(env: Mapping[str, str]) -> dict:
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    name = env.get("GITHUB_REPOSITORY", "")
    run_id = env.get("GITHUB_RUN_ID", "")
    ref = env.get("GITHUB_REF", "")
    pr = _pr_of_ref(ref)
    # A pull request's GITHUB_REF_NAME is `<n>/merge`: the branch is its head.
    branch = env.get("GITHUB_HEAD_REF") if pr else env.get("GITHUB_REF_NAME", "")
    return {
        "provider": "github",
        "repository": _repo(name, f"{server}/{name}" if name else ""),
        "commit_sha": env.get("GITHUB_SHA", ""),
        "ref": ref,
        "branch": branch or "",
        "pr_number": pr,
        "workflow": env.get("GITHUB_WORKFLOW", ""),
        "workflow_id": run_id,
        "job": env.get("GITHUB_JOB", ""),
        "run_attempt": _int(env.get("GITHUB_RUN_ATTEMPT")),
        "url": f"{server}/{name}/actions/runs/{run_id}" if name and run_id else "",
    }


def _gitlab(env: Mapping[str, str]) -> dict:
    return {
        "provider": "gitlab",
        "repository": _repo(env.get("CI_PROJECT_PATH", ""), env.get("CI_PROJECT_URL", "")),
        "commit_sha": env.get("CI_COMMIT_SHA", ""),
        "branch": env.get("CI_COMMIT_REF_NAME", ""),
        "pr_number": _int(env.get("CI_MERGE_REQUEST_IID")),
        "workflow": env.get("CI_PIPELINE_NAME") or env.get("CI_CONFIG_PATH", ""),
        "workflow_id": env.get("CI_PIPELINE_ID", ""),
        "job": env.get("CI_JOB_NAME", ""),
        "job_id": env.get("CI_JOB_ID", ""),
        "url": env.get("CI_PIPELINE_URL", ""),
        "job_url": env.get("CI_JOB_URL", ""),
    }


def _buildkite(env: Mapping[str, str]) -> dict:
    org, pipeline = env.get("BUILDKITE_ORGANIZATION_SLUG", ""), env.get("BUILDKITE_PIPELINE_SLUG")
    retries = _int(env.get("BUILDKITE_RETRY_COUNT"))
    build_url = env.get("BUILDKITE_BUILD_URL", "")
    job_id = env.get("BUILDKITE_JOB_ID", "")
    return {
        "provider": "buildkite",
        "repository": _repo(
            f"{org}/{pipeline}" if org and pipeline else "", env.get("BUILDKITE_REPO", "")
        ),
        "commit_sha": env.get("BUILDKITE_COMMIT", ""),
        "branch": env.get("BUILDKITE_BRANCH", ""),
        "pr_number": _int(env.get("BUILDKITE_PULL_REQUEST")),
        "workflow": env.get("BUILDKITE_PIPELINE_NAME") or pipeline or "",
        "workflow_id": env.get("BUILDKITE_BUILD_ID", ""),
        "job": env.get("BUILDKITE_LABEL") or env.get("BUILDKITE_STEP_KEY", ""),
        "job_id": job_id,
        "run_attempt": retries + 1 if retries is not None else None,
        "url": build_url,
        "job_url": f"{build_url}#{job_id}" if build_url and job_id else "",
    }


def _jenkins(env: Mapping[str, str]) -> dict:
    job = env.get("JOB_NAME", "")
    number = env.get("BUILD_NUMBER", "")
    branch = env.get("GIT_BRANCH", "") or env.get("BRANCH_NAME", "")
    git_url = env.get("GIT_URL", "")
    return {
        "provider": "jenkins",
        "repository": repository_of(git_url) if git_url else {},
        "commit_sha": env.get("GIT_COMMIT", ""),
        "branch": branch.removeprefix("origin/"),
        "pr_number": _int(env.get("CHANGE_ID")),
        "workflow": job,
        "job": env.get("STAGE_NAME") or job,
        # A build number counts within its job: the job's name makes it unique.
        "job_id": f"{job}#{number}" if job and number else "",
        "url": env.get("BUILD_URL", ""),
        "job_url": env.get("BUILD_URL", ""),
    }


_CIS = (
    (lambda env: env.get("GITHUB_ACTIONS") == "true" or "GITHUB_RUN_ID" in env, _github),
    (lambda env: env.get("GITLAB_CI") == "true" or "CI_PIPELINE_ID" in env, _gitlab),
    (lambda env: env.get("BUILDKITE") == "true" or "BUILDKITE_BUILD_ID" in env, _buildkite),
    (lambda env: "JENKINS_URL" in env or ("JOB_NAME" in env and "BUILD_NUMBER" in env), _jenkins),
)


def _repo(full_name: str, url: str) -> dict[str, str]:
    return {k: v for k, v in (("full_name", full_name), ("url", url)) if v}


def _pr_of_ref(ref: str) -> int | None:
    # refs/pull/<n>/merge
    parts = ref.split("/")
    if len(parts) >= 3 and parts[1] == "pull":
        return _int(parts[2])
    return None


def _int(value: str | None) -> int | None:
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number is not None and number >= 1 else None
