"""The local backend: history files under a wfrun home, runs carried out in this process.

The data flow, module by module::

    backend.py   LocalBackend: start, resume, read, list, replay (the `wfrun.backend` seam)
    engine.py    RunEngine: replay a history, then carry the run on, recording every event
    replay.py    today's code checked against a recorded history, step by step
    instance.py  one workflow's code on its loop: calls in, commands (commands.py) out
    loop.py      the deterministic asyncio event loop workflow code runs on
    attempts.py  one activity attempt (task or thread, timeouts, heartbeats); the retry loop
    direct.py    activities called outside any workflow: retries, no history
    store.py     history files: create, lock, append, fsync, list
    history.py   a history file read back: every line parsed and checked
    guard.py     warnings when workflow code calls what breaks replay
    watchdog.py  naming async activities that block the event loop
"""

from typing import TYPE_CHECKING, Any

from .direct import DirectRuntime

if TYPE_CHECKING:
    from .backend import LocalBackend

__all__ = ["DirectRuntime", "LocalBackend"]


def __getattr__(name: str) -> Any:
    # The engine and the store load with the backend, when a run is first started or read.
    if name == "LocalBackend":
        from .backend import LocalBackend

        return LocalBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
