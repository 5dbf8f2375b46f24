"""Host work in parallel with the model: an ordered map over a stream, a few items ahead.

``ordered_map(function, items, workers)`` yields ``(item, function(item))`` for every item, in
input order (the item from the caller's own copy, so that it never travels back from a worker),
while later items are already being computed, so that the caller's loop (the model's forward
passes) overlaps with the preparation of what comes next:

* ``workers=0``: in the caller's thread, one item after another (what a debugger wants);
* ``workers>=1`` with ``kind="thread"`` (the default): that many background threads. The
  tokenizer's Rust code releases the GIL, and so does most of numpy, so threads tokenize in
  parallel with each other and with the model, at no cost of starting processes or copying;
* ``kind="process"``: that many processes (``fork`` where the platform has it, as PyTorch's data
  loader does, so the function need not be picklable; ``spawn`` elsewhere), for work that holds
  the GIL; each costs a start (a fork of this process) and a copy of every result.

At most ``2 * workers`` items are in flight (one running and one waiting per worker, so that a
worker that finishes early seldom idles behind a slow item that must be yielded first), so
memory stays bounded on a stream of any length. An exception raised by ``function`` reaches the
caller unchanged, at the item that raised it; a worker process that dies (out of memory, killed)
raises ``WorkerError``.

Who parallelizes the tokenizer: with no worker or one, its batch call spreads over the tokenizer's
own Rust threads; with two or more workers (or processes) the workers are the parallelism, and
the tokenizer's threads would only compete with them, so they are switched off for the duration
of the map (``TOKENIZERS_PARALLELISM=false``, restored afterwards; a value the user set is left
alone). Measured with the network stubbed, 632 pydoc documents on 2 cores (2026-12-04), late
fixed-64 took 1.09 s with 2 workers and the tokenizer's threads on, 0.96 s with them off; with
1 worker, 1.15 s on and 1.49 s off.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from typing import Any

__all__ = ["WorkerError", "default_workers", "ordered_map"]

# More processes than this rarely pay on one machine: a group of documents takes a worker tens of
# milliseconds, and the model consumes them one group at a time.
MAX_DEFAULT_WORKERS = 8


class WorkerError(RuntimeError):
    """A worker process died before it returned a result (killed, or out of memory)."""


def default_workers() -> int:
    """The CPUs this process may use, at most ``MAX_DEFAULT_WORKERS``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


_FUNCTION: Callable | None = None


def _install(function: Callable) -> None:
    global _FUNCTION
    _FUNCTION = function
    # The tokenizer's own thread pool must not start inside a forked worker.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def _call(item: Any) -> Any:
    return _FUNCTION(item)


def _process_pool(function: Callable, workers: int) -> Executor:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_install, initargs=(function,)
    )


KINDS = ("thread", "process")
_TOKENIZER_THREADS = "TOKENIZERS_PARALLELISM"


@contextmanager
def _tokenizer_threads_off() -> Iterator[None]:
    """The tokenizer's own thread pool off while the workers run (see the module docstring);
    before a fork it also spares every child the tokenizer's warning about forking after its
    pool started. The variable is read by the tokenizer at each batch call."""
    if _TOKENIZER_THREADS in os.environ:
        yield
        return
    os.environ[_TOKENIZER_THREADS] = "false"
    try:
        yield
    finally:
        os.environ.pop(_TOKENIZER_THREADS, None)


def ordered_map(
    function: Callable, items: Iterable, workers: int, kind: str = "thread"
) -> Iterator:
    """``(item, function(item))`` for every item, in order, computed up to ``2 * workers`` items
    ahead (see the module docstring for what ``workers`` selects; callers check it is an int
    >= 0)."""
    if workers == 0:
        for item in items:
            yield item, function(item)
        return
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; valid: {KINDS}")
    own = kind == "process" or workers >= 2
    with _tokenizer_threads_off() if own else nullcontext():
        yield from _pooled(function, items, workers, kind)


def _pooled(function: Callable, items: Iterable, workers: int, kind: str) -> Iterator:
    if kind == "thread":
        executor: Executor = ThreadPoolExecutor(workers, thread_name_prefix="lc-prepare")
        submit = lambda item: executor.submit(function, item)  # noqa: E731
    else:
        executor = _process_pool(function, workers)
        submit = lambda item: executor.submit(_call, item)  # noqa: E731
    pending: deque = deque()  # (item, future), oldest first
    try:
        for item in items:
            pending.append((item, submit(item)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, _result(future)
        while pending:
            done, future = pending.popleft()
            yield done, _result(future)
    finally:
        for _, future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


def _result(future):
    try:
        return future.result()
    except BrokenProcessPool as error:
        raise WorkerError(
            "a worker process preparing documents died (out of memory, or killed); "
            "re-run with fewer workers, or with threads (kind='thread', the default)"
        ) from error
