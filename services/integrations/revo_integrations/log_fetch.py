"""Failed jobs' logs from the providers' REST APIs (a webhook never carries one).

GitHub: `GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs` answers 302 to a short-lived
signed URL of the log itself; the redirect is followed by hand, without the token (the
storage behind it is not GitHub's API and must never see the tenant's token). A workflow
run's failed jobs come from `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs`.
GitLab: `GET /projects/:id/jobs/:job_id/trace` answers the log itself.

Each HTTP call is a client span. A log larger than MAX_LOG_BYTES keeps its head and tail
(where a build says why it failed), read as it streams in: memory stays bounded whatever
the provider sends.
"""

from __future__ import annotations

import time
from urllib.parse import urljoin, urlsplit

import aiohttp
import msgspec
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from revo_contracts.ci import FAILED_STATUSES
from revo_core.ci_logs import CUT_MARKER, MAX_LOG_BYTES
from revo_integrations.metrics import LOG_FETCH_BYTES, LOG_FETCH_SECONDS

_tracer = trace.get_tracer("revo.integrations.log_fetch")
_GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
# A run has at most a few hundred jobs; pages of 100, and no more than this many pages.
_MAX_JOB_PAGES = 10
_REDIRECTS = (301, 302, 303, 307, 308)
# The answers that no retry changes: no such job or run, logs expired or deleted, a token
# that may not read them.
_PERMANENT = (401, 403, 404, 410)


class LogFetchError(Exception):
    """A provider's API did not give the log; `permanent` when retrying cannot help."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class FetchedLog(msgspec.Struct, frozen=True):
    data: bytes
    # The provider's log was longer than MAX_LOG_BYTES: its middle was cut.
    truncated: bool = False


class GithubJob(msgspec.Struct, frozen=True):
    id: int
    name: str = ""
    conclusion: str | None = None
    html_url: str | None = None


class _GithubJobPage(msgspec.Struct):
    jobs: list[GithubJob] = []


_job_page = msgspec.json.Decoder(_GithubJobPage)


class LogFetcher:
    def __init__(self, session: aiohttp.ClientSession, max_bytes: int = MAX_LOG_BYTES) -> None:
        self.session = session
        self.max_bytes = max_bytes

    async def github_failed_jobs(
        self, api_url: str, token: str, repo: str, run_id: str
    ) -> list[GithubJob]:
        """The run's jobs (its latest attempt) whose conclusion is a failure."""
        url = f"{_base(api_url)}/repos/{repo}/actions/runs/{run_id}/jobs?per_page=100"
        route = "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs"
        failed: list[GithubJob] = []
        for _ in range(_MAX_JOB_PAGES):
            async with self._get(url, route, _github_auth(token)) as response:
                await _raise_for_status(response, "github job list")
                page = _job_page.decode(await response.read())
                next_url = response.links.get("next", {}).get("url")
            failed += [job for job in page.jobs if job.conclusion in FAILED_STATUSES]
            if not next_url:
                break
            url = str(next_url)
        return failed

    async def github_job_log(self, api_url: str, token: str, repo: str, job_id: str) -> FetchedLog:
        url = f"{_base(api_url)}/repos/{repo}/actions/jobs/{job_id}/logs"
        route = "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs"
        started = time.perf_counter()
        async with self._get(url, route, _github_auth(token)) as response:
            if response.status not in _REDIRECTS:
                await _raise_for_status(response, "github job log")
                return self._measured("github", started, await self._read(response))
            location = urljoin(url, response.headers.get("Location", ""))
        # The signed URL: no token, no GitHub headers.
        async with self._get(location, "github log download", {}) as response:
            await _raise_for_status(response, "github job log download")
            return self._measured("github", started, await self._read(response))

    async def gitlab_job_trace(
        self, api_url: str, token: str, project_id: str, job_id: str
    ) -> FetchedLog:
        url = f"{_base(api_url)}/projects/{project_id}/jobs/{job_id}/trace"
        started = time.perf_counter()
        headers = {"PRIVATE-TOKEN": token} if token else {}
        async with self._get(url, "/projects/{id}/jobs/{job_id}/trace", headers) as response:
            await _raise_for_status(response, "gitlab job trace")
            return self._measured("gitlab", started, await self._read(response))

    def _get(self, url: str, route: str, headers: dict[str, str]) -> _ClientCall:
        return _ClientCall(self.session, url, route, headers)

    async def _read(self, response: aiohttp.ClientResponse) -> FetchedLog:
        """The body, or its head and tail around a marker when it passes max_bytes."""
        half = self.max_bytes // 2
        head, tail, total = bytearray(), bytearray(), 0
        async for chunk in response.content.iter_chunked(256 * 1024):
            total += len(chunk)
            room = half - len(head)
            if room > 0:
                head += chunk[:room]
                chunk = chunk[room:]
            tail += chunk
            if len(tail) > 2 * half:  # trimmed in batches: not one copy per chunk
                del tail[: len(tail) - half]
        if total <= self.max_bytes:
            return FetchedLog(bytes(head + tail))
        kept_tail = bytes(tail[-half:]) if half else b""
        cut = total - len(head) - len(kept_tail)
        return FetchedLog(bytes(head) + CUT_MARKER % cut + kept_tail, truncated=True)

    @staticmethod
    def _measured(provider: str, started: float, log: FetchedLog) -> FetchedLog:
        LOG_FETCH_SECONDS.labels(provider).observe(time.perf_counter() - started)
        LOG_FETCH_BYTES.labels(provider).inc(len(log.data))
        return log


class _ClientCall:
    """`async with`: one GET as a client span (OpenTelemetry's HTTP conventions), redirects
    not followed (the caller decides where its token may go)."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, route: str, headers: dict[str, str]
    ) -> None:
        self.session, self.url, self.route, self.headers = session, url, route, headers

    async def __aenter__(self) -> aiohttp.ClientResponse:
        parts = urlsplit(self.url)
        self.span = _tracer.start_span(
            f"GET {self.route}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "server.address": parts.hostname or "",
                "url.path": parts.path,
            },
        )
        try:
            self.response = await self.session.get(
                self.url, headers=self.headers, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.span.set_status(StatusCode.ERROR, type(exc).__name__)
            self.span.end()
            raise LogFetchError(f"GET {self.route}: {type(exc).__name__}: {exc}") from exc
        self.span.set_attribute("http.response.status_code", self.response.status)
        if self.response.status >= 400:
            self.span.set_status(StatusCode.ERROR)
        return self.response

    async def __aexit__(self, *exc_info: object) -> None:
        self.response.release()
        self.span.end()


async def _raise_for_status(response: aiohttp.ClientResponse, what: str) -> None:
    if response.status < 300:
        return
    detail = (await response.content.read(300)).decode("utf-8", errors="replace")
    raise LogFetchError(
        f"{what}: HTTP {response.status} {detail}".strip(),
        permanent=response.status in _PERMANENT,
    )


def _github_auth(token: str) -> dict[str, str]:
    headers = dict(_GITHUB_HEADERS)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _base(api_url: str) -> str:
    return api_url.rstrip("/")
