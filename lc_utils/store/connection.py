"""Connecting to Milvus: Milvus Lite (a local file) or a server, with errors that say what to do.

``connect("auto")`` opens Milvus Lite at ``outputs/milvus/lc.db``; a path ending in ``.db`` opens
Milvus Lite there; an ``http(s)://`` or ``tcp://`` URL (and a token) reaches a Milvus server or a
managed cluster. A wrong or unreachable URI raises ``MilvusConnectionError`` within seconds.

Introduced in notebook 05_milvus_validation.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import weakref
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_LITE_PATH = Path("outputs/milvus/lc.db")
_VALID_URIS = (
    '"auto" (Milvus Lite at outputs/milvus/lc.db), a file path ending in ".db" (Milvus Lite), '
    'or a server URL such as "http://127.0.0.1:19530", "https://host:443" or "tcp://host:19530"'
)


# Milvus Lite database path -> clients from connect() that use it, so close() knows the last one.
_LITE_CLIENTS: dict[str, weakref.WeakSet] = {}
# client -> whether it talks to Milvus Lite.
_IS_LITE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# client -> what this package keeps about it (see client_cache), forgotten by close().
_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class MilvusConnectionError(ConnectionError):
    """Milvus could not be reached or opened; the message names the URI and what is valid."""


def connect(uri: str | Path = "auto", token: str | None = None, *, timeout: float = 10):
    """Open Milvus Lite or connect to a Milvus server and return a ``pymilvus.MilvusClient``.

    Args:
        uri: ``"auto"`` for Milvus Lite at ``outputs/milvus/lc.db`` (relative to the working
            directory), a path ending in ``.db`` for Milvus Lite there (parent folders are
            created), or an ``http://``, ``https://`` or ``tcp://`` URL of a Milvus server or
            managed cluster.
        token: ``"user:password"`` or an API key, for servers with authentication.
        timeout: seconds to wait for a server to answer before giving up.
    Raises:
        MilvusConnectionError: (a ``ConnectionError``) for a malformed, unreachable or unusable
            URI, within about ``timeout`` seconds; it names the URI and the valid forms.
    Introduced in notebook 05_milvus_validation.
    """
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    if not isinstance(uri, str | Path):
        raise MilvusConnectionError(f"uri is a {type(uri).__name__}; valid: {_VALID_URIS}")
    text = str(uri).strip()
    scheme = urlparse(text).scheme.lower() if "://" in text else ""
    if text == "auto" or (scheme == "" and text.endswith(".db")):
        path = DEFAULT_LITE_PATH if text == "auto" else Path(text).expanduser()
        _check_milvus_lite()
        try:
            # Milvus Lite keeps its database in a folder of this name; making it here turns an
            # unusable path into a message with its cause instead of "Open local milvus failed".
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MilvusConnectionError(
                f"could not open Milvus Lite at {text!r}: cannot create its database folder "
                f"{str(path)!r} ({error.strerror or error}); choose a writable path ending in "
                '".db"'
            ) from error
        target = str(path.resolve())
    elif scheme in ("http", "https", "tcp"):
        _probe_server(text, timeout)
        target = text
    else:
        raise MilvusConnectionError(f"cannot use uri {text!r}; valid: {_VALID_URIS}")
    causes = _LiteFailures()
    try:
        with causes:
            client = MilvusClient(uri=target, token=token or "", timeout=timeout)
    except MilvusException as error:
        reason = getattr(error, "message", None) or str(error)
        if scheme == "" and _locked_elsewhere(Path(target)):
            reason = (
                "another process has this Milvus Lite database open (Lite allows one process "
                "per file); call lc.store.close(client) there or stop that kernel, or use a "
                "server"
            )
        elif causes.messages:
            reason = f"{reason} ({causes.messages[-1]})"
        raise MilvusConnectionError(
            f"could not open Milvus at {text!r}: {reason}. Valid: {_VALID_URIS}"
        ) from error
    if scheme == "":
        _LITE_CLIENTS.setdefault(target, weakref.WeakSet()).add(client)
    return client


def close(client) -> None:
    """Close a client from ``connect``.

    For Milvus Lite, the last ``close`` of a database file also stops its in-process server, which
    writes everything out and releases the file lock, so another process (a second notebook
    kernel, papermill) can open it. Without this the lock lasts until the Python process exits.
    Introduced in notebook 05_milvus_validation.
    """
    client.close()
    _CACHES.pop(client, None)
    for path, clients in list(_LITE_CLIENTS.items()):
        if client in clients:
            clients.discard(client)
            if not clients:
                del _LITE_CLIENTS[path]
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(path)


def client_cache(client) -> dict:
    """A dict this package keeps per client (the collection layouts), dropped by ``close``."""
    if client not in _CACHES:
        _CACHES[client] = {}
    return _CACHES[client]


class _LiteFailures(logging.Handler):
    """While active, catch what Milvus Lite logs when it cannot start, instead of a traceback
    on stderr, so that ``connect`` can put the cause into its own message."""

    _LOGGER = "milvus_lite.server_manager"

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        cause = f"{type(error).__name__}: {error}" if error else record.getMessage()
        self.messages.append(cause)

    def __enter__(self):
        logger = logging.getLogger(self._LOGGER)
        self._propagate = logger.propagate
        logger.addHandler(self)
        logger.propagate = False
        return self

    def __exit__(self, *exc) -> None:
        logger = logging.getLogger(self._LOGGER)
        logger.removeHandler(self)
        logger.propagate = self._propagate


def _locked_elsewhere(path: Path) -> bool:
    lock = path / "LOCK"
    if not lock.is_file():
        return False
    try:
        import fcntl
    except ImportError:  # Windows: no flock, and no better diagnosis to offer
        return False
    with open(lock, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _check_milvus_lite() -> None:
    spec = importlib.util.find_spec("milvus_lite")
    if spec is None:
        raise MilvusConnectionError(
            "Milvus Lite is not installed; `pip install milvus-lite`, or pass a server URL"
        )
    # A stray milvus_lite.py next to a notebook wins the import and breaks Lite in obscure ways.
    if spec.origin and not spec.origin.endswith("__init__.py"):
        raise MilvusConnectionError(
            f"{spec.origin} shadows the milvus-lite package; rename that file"
        )


def _probe_server(uri: str, timeout: float) -> None:
    parsed = urlparse(uri)
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 19530)
    except ValueError as error:
        raise MilvusConnectionError(f"uri {uri!r} has a bad port ({error})") from error
    host = parsed.hostname or "localhost"
    try:
        socket.create_connection((host, port), timeout=min(timeout, 5)).close()
    except OSError as error:
        raise MilvusConnectionError(
            f"no Milvus server answers at {uri!r} ({host}:{port}: {error}). Is it running? "
            f"Valid: {_VALID_URIS}"
        ) from error


def is_lite(client) -> bool:
    """Whether ``client`` talks to Milvus Lite (an embedded file) rather than a server."""
    if client not in _IS_LITE:
        # Lite reports "milvus_lite-3.2.2"; the Milvus 2.3.5 server package reports "v2.3.5-lite".
        in_registry = any(client in clients for clients in _LITE_CLIENTS.values())
        version = str(client.get_server_version())
        _IS_LITE[client] = in_registry or version.startswith("milvus_lite")
    return _IS_LITE[client]
