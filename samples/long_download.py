"""A long download that survives crashes: each attempt carries on from its last heartbeat.

    wfrun start samples/long_download.py:DownloadWorkflow --arg url=https://example.com/big.iso

The activity copies a (fake, in-process) remote file chunk by chunk into ``downloads/`` and
reports its progress with ``workflows.activity_heartbeat(offset)``. Kill the process in the
middle (Ctrl-C, or ``kill -9``) and ``wfrun resume <run-id>``: the attempt that runs again
reads ``activity_info().heartbeat_details`` and starts from the last recorded offset instead
of from zero. ``heartbeat_timeout`` also fails an attempt that stops making progress.

``DOWNLOAD_CHUNKS`` and ``DOWNLOAD_DELAY`` (seconds per chunk) set its size and pace.
"""

import asyncio
import hashlib
import os
from datetime import timedelta
from pathlib import Path

import wfrun as workflows

CHUNK = 64 * 1024


def remote_chunk(url: str, index: int) -> bytes:
    """Stands in for an HTTP range request: deterministic bytes for each chunk."""
    return hashlib.sha256(f"{url}#{index}".encode()).digest() * (CHUNK // 32)


@workflows.activity(
    start_to_close_timeout=timedelta(hours=1),
    heartbeat_timeout=timedelta(seconds=30),
    retry_policy_max_attempts=5,
)
async def download(url: str, destination: str) -> dict:
    chunks = int(os.environ.get("DOWNLOAD_CHUNKS", "40"))
    delay = float(os.environ.get("DOWNLOAD_DELAY", "0.05"))
    info = workflows.activity_info()
    start = info.heartbeat_details[0] if info.heartbeat_details else 0
    path = Path(destination)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "r+b" if start and path.exists() else "wb") as f:
        f.seek(start * CHUNK)
        f.truncate()  # drop whatever a crash left after the last recorded chunk
        for index in range(start, chunks):
            await asyncio.sleep(delay)  # the network
            f.write(remote_chunk(url, index))
            f.flush()
            workflows.activity_heartbeat(index + 1)
    return {"path": str(path), "bytes": chunks * CHUNK, "resumed_at_chunk": start}


@workflows.activity
async def checksum(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@workflows.workflow.define(name="long_download")
class DownloadWorkflow:
    @workflows.workflow.entrypoint
    async def run(self, url: str) -> dict:
        name = url.rstrip("/").rsplit("/", 1)[-1] or "download.bin"
        result = await download(url, f"downloads/{name}")
        return {**result, "sha256": await checksum(result["path"])}
