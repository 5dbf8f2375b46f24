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

``ordered_split_map(split, work, merge, items, workers)`` is the same map for items that cut
into parts: with two or more threads the parts of one item run on different workers and the
thread that finishes the last part merges them, so that the last item of a stream (or a stream
of one item) does not leave all but one worker idle. ``embed_corpus`` prepares each group of
documents so, in one part per worker: on the 10 groups of the host benchmark, 2 workers spent
about a group's preparation (0.08 s of 0.58 s, 2026-12-04) with one of them idle at the end.

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
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

__all__ = ["WorkerError", "default_workers", "ordered_map", "ordered_split_map"]

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


@dataclass(frozen=True)
class _Whole:
    """``merge(item, [work(part) for part in split(item)])``: an item's parts one after another,
    as one function (what runs with fewer than two worker threads, or in a worker process)."""

    split: Callable[[Any], Sequence]
    work: Callable
    merge: Callable

    def __call__(self, item):
        return self.merge(item, [self.work(part) for part in self.split(item)])


def ordered_split_map(
    split: Callable[[Any], Sequence],
    work: Callable,
    merge: Callable,
    items: Iterable,
    workers: int,
    kind: str = "thread",
) -> Iterator:
    """``(item, merge(item, [work(part) for part in split(item)]))`` for every item, in order.

    Like ``ordered_map``, but with two or more worker threads the parts of one item run on
    different workers, and ``merge`` runs in the thread that finished the item's last part. So
    an item keeps every worker busy even when it is the last one of the stream, or the only one
    (with whole items, the last item of a stream runs on one worker while the others wait). The
    result is that of the one-function form, whatever the number of workers, provided ``merge``
    sees only the parts' results. At most ``2 * workers`` items are in flight; an exception
    raised by ``split``, ``work`` or ``merge`` reaches the caller at its item. With fewer than
    two workers, or with processes, each item runs whole (``ordered_map``).
    """
    whole = _Whole(split, work, merge)
    if workers < 2 or kind != "thread":
        yield from ordered_map(whole, items, workers, kind)
        return
    with _tokenizer_threads_off():
        executor = ThreadPoolExecutor(workers, thread_name_prefix="lc-prepare")
        pending: deque = deque()  # (item, future of its merged result), oldest first
        try:
            for item in items:
                pending.append((item, _submit_parts(executor, whole, item)))
                if len(pending) >= 2 * workers:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


def _submit_parts(executor: Executor, whole: _Whole, item) -> Future:
    """Queue the parts of ``item``; the returned future gets the merged result, or the first
    exception of any of its steps."""
    merged: Future = Future()
    lock = threading.Lock()

    def fail(error: BaseException) -> None:
        with lock:
            if not merged.done():
                merged.set_exception(error)

    try:
        parts = list(whole.split(item))
    except BaseException as error:
        fail(error)
        return merged
    results: list = [None] * len(parts)
    left = [len(parts)]

    def finish() -> None:
        try:
            result = whole.merge(item, results)
        except BaseException as error:
            fail(error)
            return
        with lock:
            if not merged.done():
                merged.set_result(result)

    def run(index: int, part) -> None:
        if merged.done():  # an earlier part of this item failed: no need to go on
            return
        try:
            result = whole.work(part)
        except BaseException as error:
            fail(error)
            return
        with lock:
            results[index] = result
            left[0] -= 1
            last = left[0] == 0
        if last:
            finish()

    if not parts:
        finish()
    for index, part in enumerate(parts):
        executor.submit(run, index, part)
    return merged
