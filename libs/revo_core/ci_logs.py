"""CI logs: inside the CiEvent when small, else gzip-compressed into the CI_LOGS object store.

The object store (JetStream's own, stream OBJ_CI_LOGS) chunks what it keeps (128 KiB
chunks) and forgets it after RETENTION_S; an object is named `<tenant>/<event id>.log.gz`,
and a reader only follows a reference under its own tenant's prefix, so a forged event
cannot point one tenant's investigation at another tenant's log.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io

from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig
from nats.js.errors import BucketNotFoundError
from nats.js.object_store import ObjectStore

from revo_contracts.ci import CI_LOGS_BUCKET, INLINE_LOG_MAX_BYTES, CiLog, CiLogRef
from revo_core.errors import InvalidRequest

# Logs are kept two weeks: long enough to investigate a failure and rerun it, short
# enough that a busy CI does not fill the disk. A redeploy with another value updates it.
RETENTION_S = 14 * 24 * 3600.0
# Larger logs keep their head and tail (where a build's failure is) around a marker.
MAX_LOG_BYTES = 25 * 1024 * 1024
CUT_MARKER = b"\n[... revo cut %d bytes from the middle of this log ...]\n"
# Compressing a 25 MB log takes ~0.3 s: off the event loop beyond this size.
_COMPRESS_IN_THREAD_BYTES = 256 * 1024


async def ci_logs_bucket(js: JetStreamContext) -> ObjectStore:
    """The CI_LOGS bucket, created on first use."""
    try:
        return await js.object_store(CI_LOGS_BUCKET)
    except BucketNotFoundError:
        config = ObjectStoreConfig(
            description="CI job logs (gzip), named <tenant>/<event id>.log.gz",
            ttl=RETENTION_S,
        )
        return await js.create_object_store(CI_LOGS_BUCKET, config=config)


def clip(data: bytes, limit: int = MAX_LOG_BYTES) -> tuple[bytes, bool]:
    """At most `limit` bytes: the head and the tail of a longer log, and whether it was cut."""
    if len(data) <= limit:
        return data, False
    keep = limit // 2
    marker = CUT_MARKER % (len(data) - 2 * keep)
    return data[:keep] + marker + data[-keep:], True


def log_object_name(tenant: str, event_id: str) -> str:
    return f"{tenant}/{event_id}.log.gz"


async def store_log(js: JetStreamContext, tenant: str, event_id: str, data: bytes) -> CiLog:
    """The log as a CiEvent carries it. Bytes that are not UTF-8 are replaced, not refused."""
    data, truncated = clip(data)
    text = data.decode("utf-8", errors="replace")
    encoded = text.encode()
    if len(encoded) <= INLINE_LOG_MAX_BYTES:
        return CiLog(text=text, truncated=truncated)
    packed = await _compress(encoded)
    name = log_object_name(tenant, event_id)
    bucket = await ci_logs_bucket(js)
    await bucket.put(name, packed)
    ref = CiLogRef(
        name=name,
        size=len(encoded),
        stored_size=len(packed),
        sha256=hashlib.sha256(encoded).hexdigest(),
    )
    return CiLog(ref=ref, truncated=truncated)


async def read_log(js: JetStreamContext, tenant: str, log: CiLog) -> str:
    """The text of a CiEvent's log, fetched from CI_LOGS where it is a reference."""
    if log.ref is None:
        return log.text or ""
    ref = log.ref
    if ref.bucket != CI_LOGS_BUCKET or not ref.name.startswith(f"{tenant}/"):
        raise InvalidRequest(
            f"log reference {ref.bucket}/{ref.name} is not one of tenant {tenant!r}'s logs"
        )
    bucket = await ci_logs_bucket(js)
    sink = io.BytesIO()
    await bucket.get(ref.name, writeinto=sink)
    return gzip.decompress(sink.getvalue()).decode("utf-8", errors="replace")


async def _compress(data: bytes) -> bytes:
    if len(data) < _COMPRESS_IN_THREAD_BYTES:
        return gzip.compress(data, compresslevel=6)
    return await asyncio.to_thread(gzip.compress, data, 6)
