"""Which failures are worth retrying within a build, and the error a build ends with when too many remain.

A *transient* failure says nothing about the unit: the simulator process died or stopped answering, a
connection dropped, a server answered 429 or 5xx. Retried a moment later (with a fresh simulator), the
unit usually succeeds. A deterministic failure (an unsolvable task, a game the engine rejects, a reply
that cannot be parsed) would fail the same way again, so it is recorded at once.

Classes are recognised by name and module, so this layer imports neither py4j, openai nor ray.
"""

from __future__ import annotations


class TransientError(RuntimeError):
    """Raise (or wrap) to mark a failure as worth retrying: the unit may well succeed a moment later."""


class BuildFailed(RuntimeError):
    """A build that ran but must not count as done (too many failed units); the message says what to do."""


_NETWORK_MODULES = ("py4j", "httpx", "httpcore", "requests", "urllib3", "openai", "aiohttp")
_HTTP_TRANSIENT = {
    "APIConnectionError",
    "APITimeoutError",
    "RateLimitError",
    "InternalServerError",
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "ReadError",
    "WriteError",
    "RemoteProtocolError",
    "TransportError",
    "TimeoutException",
    "NetworkError",
    "ServiceUnavailableError",
}
# Ray's own failures: a worker or node died, an object went with it (the unit is computed again elsewhere)
_RAY_TRANSIENT = {
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "WorkerCrashedError",
    "NodeDiedError",
    "ObjectLostError",
    "OwnerDiedError",
    "ObjectReconstructionFailedError",
    "ObjectFetchTimedOutError",
    "GetTimeoutError",
}


def _transient_class(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | ConnectionError | TimeoutError | EOFError):
        return True
    for cls in type(exc).__mro__:
        module = cls.__module__ or ""
        if module.startswith("py4j"):  # the JVM behind a simulator died or stopped answering ...
            return type(exc).__name__ != "Py4JJavaError"  # ... unlike a Java exception, which would recur
        if module.startswith(_NETWORK_MODULES) and cls.__name__ in _HTTP_TRANSIENT:
            return True
        if module.startswith("ray") and cls.__name__ in _RAY_TRANSIENT:
            return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a crash or network failure that a retry may cure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _transient_class(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def describe(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, shortened: what a failure table and a summary show."""
    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}"
