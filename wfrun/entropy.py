"""Random bits for run seeds, generated run ids and temporary names, read from the OS a block
at a time.

`secrets` asks the kernel for every value (a ``getrandom`` system call, which lets go of the
GIL: in a process with many runs and busy sync threads, each cost the event loop a wait to
get it back). These are the same bytes (`os.urandom`), read 4 KiB at once and handed out in
order; each byte is handed out once. A forked child starts with an empty block of its own,
so that it never repeats its parent's values.
"""

from __future__ import annotations

import os
import threading
from typing import Final

#: Bytes read from the OS at once: 512 seeds.
BLOCK: Final = 4096

_block = b""
_used = 0
_mutex = threading.Lock()


def token_bytes(count: int) -> bytes:
    """``count`` random bytes (at most `BLOCK`), as `secrets.token_bytes` gives."""
    global _block, _used
    with _mutex:
        if _used + count > len(_block):
            _block, _used = os.urandom(BLOCK), 0
        taken = _block[_used : _used + count]
        _used += count
    return taken


def token_hex(count: int) -> str:
    """``count`` random bytes as ``2 * count`` hex digits, as `secrets.token_hex` gives."""
    return token_bytes(count).hex()


def randbits(bits: int) -> int:
    """A random whole number of ``bits`` bits, as `secrets.randbits` gives."""
    return int.from_bytes(token_bytes((bits + 7) // 8), "big") >> (-bits % 8)


def _forget_in_child() -> None:
    # The parent's unused bytes are not the child's to use again: both would hand them out.
    global _block, _used, _mutex
    _block, _used = b"", 0
    _mutex = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
