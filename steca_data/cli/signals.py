"""Ctrl-C and ``kill``: one policy for both command-line tools.

The first SIGINT (or SIGTERM) raises ``KeyboardInterrupt`` (``Terminated`` for SIGTERM) in the main thread,
so every ``finally`` and context manager runs: simulators and engines are closed, staged outputs are
dropped, the cache commits what it holds. Every later signal is ignored: pressing Ctrl-C again while that
shutdown runs cannot interrupt the cleanup halfway or print a library's traceback. The command then ends
with one line and exit 130 (SIGINT) or 143 (SIGTERM); a command may say more (a build: how many units are
kept) by raising ``Interrupted`` with its line.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_LINE = "interrupted; nothing half-written was left, and what was stored before is kept"
_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so that the same cleanup runs as for Ctrl-C."""


class Interrupted(KeyboardInterrupt):
    """Raised by a command that caught an interrupt and knows what to tell the user about it."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line
        _state["line"] = line  # typer turns an interrupt into a bare exit code: the line must survive that


_state: dict = {"code": None, "line": None}


def received() -> int | None:
    """The exit code of the signal this run received (130 or 143), or None."""
    return _state["code"]


_TOOLS = ("steca-data", "steca-train")


def _started_as_tool() -> bool:
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if any(os.path.basename(a) in _TOOLS for a in argv[:2]):
        return True
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else ""
    return module.startswith(("steca_data.cli", "steca_train.cli"))


def _exit_quietly(signum: int, frame) -> None:  # noqa: ANN001 - signal's signature
    os.write(2, f"error: {DEFAULT_LINE}\n".encode())
    os._exit(_CODES.get(signum, 128 + signum))  # nothing has started yet: nothing to clean up


def quiet_start_up() -> None:
    """In a tool's process, a signal before the command starts (imports take a second or two) exits quietly."""
    if threading.current_thread() is threading.main_thread() and _started_as_tool():
        for sig in _CODES:
            if signal.getsignal(sig) in (signal.default_int_handler, signal.SIG_DFL):
                signal.signal(sig, _exit_quietly)


def _handler(signum: int, frame) -> None:  # noqa: ANN001 - signal's signature
    if _state["code"] is not None:
        _state["presses"] = _state.get("presses", 1) + 1
        if _state["presses"] >= 3 and time.monotonic() - _state["first"] > 3:  # the shutdown is stuck
            os.write(2, f"error: {_state['line'] or DEFAULT_LINE} (stopped at once)\n".encode())
            os._exit(_state["code"])
        return  # already shutting down: a second Ctrl-C must not break the cleanup
    _state.update(code=_CODES.get(signum, 128 + signum), first=time.monotonic(), presses=1)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def ignore_further() -> None:
    """After an interrupt, until the process exits (atexit handlers, finalisers): no signal may raise."""
    if threading.current_thread() is threading.main_thread():
        for sig in _CODES:
            signal.signal(sig, signal.SIG_IGN)


@contextmanager
def signal_policy() -> Iterator[None]:
    """Install the policy for one command; restore the previous handlers afterwards (in-process runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in _CODES}
    _state.update(code=None, line=None)
    for sig in _CODES:
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def interrupt_line(exc: BaseException | None) -> str:
    """The line a command left in an ``Interrupted`` anywhere in ``exc``'s chain, else the default."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Interrupted):
            return exc.line
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return _state["line"] or DEFAULT_LINE


def interrupt_code(exc: BaseException | None) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (the signal received, else the exception's kind)."""
    if received() is not None:
        return received()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Terminated):
            return 143
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return 130
