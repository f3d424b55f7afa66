"""What both command-line tools (``steca-data`` and ``steca-train``) do alike: one error policy, one line.

- A user error (a bad recipe, ``--set`` or argument) is one line naming the file and line (or ``--set``)
  and the field, exit 2, before any work.
- A runtime failure (a locked or damaged cache, a full disk, too many failed units, a crash) is one line
  with the real cause and what to do, exit 1.
- ``--debug`` (anywhere on the command line, or ``STECA_DEBUG=1``) shows tracebacks; without it none
  ever reaches the user, not even from a worker thread or a library's log.
- Ctrl-C / SIGTERM: one line, exit 130 / 143, every cleanup runs, later signals ignored (``cli.signals``).
- Everything printed from data (names, ids, paths, SQL results, messages that echo input) is escaped,
  so ``[red]x[/red]`` shows literally and ``[/x]`` cannot break the output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape

from steca_data.cli import signals
from steca_data.cli.failures import explain_failure

err = Console(stderr=True)
DEBUG_FLAG = "--debug"
_state = {"debug": os.environ.get("STECA_DEBUG", "") not in ("", "0")}


def debugging() -> bool:
    return _state["debug"]


def say(message: str, style: str = "red", label: str = "error") -> None:
    """One line on stderr: a styled label and the message, escaped (the message may echo data)."""
    flat = " ".join(message.splitlines())
    err.print(f"[{style}]{label}:[/{style}] {escape(flat)}", highlight=False, soft_wrap=True, emoji=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line and exit: code 2 for a user error (nothing was done), 1 for a runtime failure."""
    say(message)
    raise typer.Exit(code)


def recipe_or_exit(path: Path, overrides: list[str]):
    """The validated recipe, or its first problem (and how many more) and exit code 2: no traceback, no work."""
    from steca_data.recipe.model import RecipeError, load_recipe

    try:
        return load_recipe(path, overrides)
    except RecipeError as exc:
        lines = exc.lines or [f"{path}: unusable recipe"]
        say(lines[0])
        if len(lines) > 1:
            say(f"{len(lines) - 1} more problem(s) in {path}; fix the first and run again", "yellow", "note")
        raise typer.Exit(2) from None


class _OneLine(logging.Formatter):
    """Log records as single lines, without tracebacks (those are for --debug)."""

    def format(self, record: logging.LogRecord) -> str:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return " ".join(super().format(record).split())


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test may have replaced it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_OneLine("%(asctime)s %(message)s"))
        # py4j logs each broken call to a dead JVM on the root logger; the build reports the failure itself
        self.addFilter(lambda record: "py4j" not in record.pathname)

    @property
    def stream(self):  # noqa: ANN201 - logging's attribute
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001 - logging sets it in __init__
        pass


@contextmanager
def _quiet_failures(debug: bool) -> Iterator[None]:
    """No traceback from logs or threads (py4j logs a dead JVM with its stack) unless --debug; the state of
    logging and threading is restored afterwards, so running an app in-process leaves no trace."""
    root = logging.getLogger()
    noisy = {name: logging.getLogger(name) for name in ("py4j", "httpx", "openai", "urllib3")}
    handlers, level, levels = list(root.handlers), root.level, {n: lg.level for n, lg in noisy.items()}
    hooks = (threading.excepthook, sys.unraisablehook)
    if not debug:
        root.handlers[:] = [_StderrHandler()]
        root.setLevel(logging.WARNING)
        for logger in noisy.values():
            logger.setLevel(logging.CRITICAL)
        _silence_hooks()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, logger in noisy.items():
            logger.setLevel(levels[name])
        threading.excepthook, sys.unraisablehook = hooks


def _silence_hooks() -> None:
    """A worker thread's exception reaches the main thread, which reports it; a finaliser's is noise."""
    threading.excepthook = lambda args: None
    sys.unraisablehook = lambda unraisable: None


def log_progress(quiet: bool) -> None:
    """``--quiet``: progress as timestamped log lines (INFO); otherwise warnings only."""
    logging.getLogger().setLevel(logging.INFO if quiet else logging.WARNING)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(message)s", stream=sys.stderr)


def reporter(quiet: bool):
    """Rich bars on a terminal; timestamped log lines (every few seconds) with --quiet."""
    from steca_data.core.progress import Reporter

    log_progress(quiet)
    return Reporter(quiet=quiet, console=err)


def _kind(exc: BaseException, name: str) -> bool:
    """By class name: typer may vendor its own copy of click, whose exceptions are not ``click``'s."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _usage_error(exc: Exception) -> int:
    ctx = getattr(exc, "ctx", None)
    if _kind(exc, "NoArgsIsHelpError") and ctx is not None:
        click.echo(ctx.get_help(), err=True)
        return int(getattr(exc, "exit_code", 2))
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    say(f"{where}{exc.format_message()}{hint}")
    return 2


def _split_debug(args: list[str]) -> tuple[list[str], bool]:
    """``--debug`` may stand anywhere before a ``--``; it is the tools' flag, not a command's."""
    cut = args.index("--") if "--" in args else len(args)
    head, tail = args[:cut], args[cut:]
    return [a for a in head if a != DEBUG_FLAG] + tail, DEBUG_FLAG in head


def _interrupted(exc: BaseException | None) -> int:
    """One line for Ctrl-C / SIGTERM (whatever a library wrapped it in), exit 130 / 143."""
    signals.ignore_further()
    say(signals.interrupt_line(exc))
    return signals.interrupt_code(exc)


def _invoke(app: typer.Typer, args: list[str], prog: str | None) -> int:
    command = typer.main.get_command(app)
    try:
        code = command.main(args, prog_name=prog, standalone_mode=False)
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except BrokenPipeError:  # e.g. `steca-data sql … | head`: the reader has all it wanted
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
        if signals.received() is not None or _kind(exc, "Abort") and isinstance(exc.__cause__, KeyboardInterrupt):
            return _interrupted(exc)  # click turns Ctrl-C into Abort; a library may turn it into anything
        if _kind(exc, "UsageError"):
            return _usage_error(exc)
        if _kind(exc, "Abort"):
            say("aborted")
            return 1
        if debugging():
            raise
        message, code = explain_failure(exc)
        say(message)
        return code
    if signals.received() is not None or code == 130:  # typer turns Ctrl-C into exit code 130, silently
        return _interrupted(None)
    return code if isinstance(code, int) else 0


def run_app(app: typer.Typer, args: list[str] | None = None, prog: str | None = None) -> int:
    """Run a typer app under the error policy above; returns the exit code (the entry points exit with it)."""
    args, debug = _split_debug(list(sys.argv[1:] if args is None else args))
    before = _state["debug"]
    _state["debug"] = before or debug
    if debugging():  # engines started by this run log their warnings too (vLLM reads it at import)
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    else:  # vLLM logs its failures with tracebacks; the one line comes from us (policies/engine_start.py)
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "CRITICAL")
    if not debugging() and "torch" not in sys.modules:  # torch C++ start-up warnings (NUMA binding): --debug only
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    try:
        with _quiet_failures(debugging()), signals.signal_policy():
            return _invoke(app, args, prog)
    finally:
        _state["debug"] = before


def entry_point(app: typer.Typer, prog: str) -> None:
    """What a console script calls: run the app, exit with its code (quietly: no finaliser noise either)."""
    code = run_app(app, prog=prog)
    signals.ignore_further()  # the command is over: a signal now would only break the exit (and the exit code)
    if not debugging() and DEBUG_FLAG not in sys.argv:
        _silence_hooks()
    sys.exit(code)
