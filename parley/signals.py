"""Stopping child processes with their parent: SIGTERM handled as Ctrl-C is, and
children that Linux stops when their parent dies.

Commands that start processes (``LocalStack``: `parley up`, `demo`, `replay`, every
`bench` that starts a stack) stop them in ``finally`` blocks. Those run on Ctrl-C, but a
SIGTERM (``timeout``, systemd, ``kill``) ends Python at once by default, leaving the
children running with parent pid 1. ``sigterm_as_interrupt`` makes SIGTERM take the
Ctrl-C path, and ``die_with_parent`` covers the case no handler sees (SIGKILL).
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

_terminated = threading.Event()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _terminated.set()
    on_interrupt = signal.getsignal(signal.SIGINT)
    if callable(on_interrupt):
        # asyncio.run's handler cancels the main task (its finally blocks run, then
        # asyncio.run raises KeyboardInterrupt); Python's default raises it here.
        on_interrupt(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt  # SIGINT ignored (a background job): still stop cleanly


def sigterm_as_interrupt() -> Callable[[], None]:
    """Until the returned function is called, SIGTERM does what Ctrl-C does (asyncio's
    SIGINT handler if one is installed, else KeyboardInterrupt). Only the main thread
    may set handlers: elsewhere, and where SIGTERM already has a Python handler, this
    changes nothing. The returned function puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if callable(previous):  # a handler of its own (e.g. `parley server`'s): keep it
        return lambda: None
    signal.signal(signal.SIGTERM, _on_sigterm)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, previous)

    return restore


def terminated() -> bool:
    """Whether a SIGTERM was taken as an interrupt (exit status 143, not 130)."""
    return _terminated.is_set()


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the thread that started it
    dies (even by SIGKILL); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: after fork, only a call
    pr_set_pdeathsig = 1
    return lambda: libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
