"""Ray itself, for the scale-out job: starting a local Ray or joining a cluster, telling a failure
of Ray from an error of the job's own code, and saying it in one line.

``start_ray`` retries a node that did not come up in time once; ``RayJobError`` is what
``embed_to_milvus`` raises when Ray fails mid-run. Introduced in notebook 09_scaling_out.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["RayJobError", "start_ray"]

# Words of Ray's own errors when a local node does not come up in time (Ray 2.60: the Python
# node start, the core worker's node lookup, and services.wait_for_node).
_START_TIMEOUT_SIGNS = (
    "timed out during startup",
    "while waiting for node to startup",
    "RAY_raylet_start_wait_time_s",
    "node registration may not be complete",
)


class RayJobError(RuntimeError):
    """Ray itself failed during ``embed_to_milvus`` (a node, an actor beyond its restarts, an
    object lost); the message is one line, and a re-run of the same call resumes. Introduced in
    notebook 09_scaling_out."""


def is_ray_failure(error: BaseException) -> bool:
    """True for a failure of Ray itself, False for an error raised by chunking or embedding code
    (ours or the user's), which keeps its own type and message."""
    import ray.exceptions  # optional: the extra "scale"

    if isinstance(error, ray.exceptions.RayTaskError | ray.exceptions.UserCodeException):
        return False
    if isinstance(error, ray.exceptions.RayError):
        return True
    try:
        from ray.data.exceptions import ExecutionTimeoutError
    except ImportError:  # older Ray Data
        return False
    return isinstance(error, ExecutionTimeoutError)


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, at most ``limit`` characters (Ray's run long)."""
    lines = str(error).strip().splitlines()
    line = lines[0].strip() if lines else ""
    return line[: limit - 3] + "..." if len(line) > limit else line


def ray_failure_message(error: BaseException, stats) -> str:
    """One line: what failed, how far the job got, and that a re-run resumes."""
    what = first_line(error)
    done = f"{stats.done} of {stats.documents}" if stats is not None else "no"
    return (
        f"Ray failed during the job ({type(error).__name__}: {what or 'no message'}); {done} "
        "documents were done. Run embed_to_milvus again with the same arguments to resume: "
        "documents stored whole are skipped, any others are embedded again"
    )


def import_ray():
    # Ray is optional (the extra "scale"), so it is imported only when a job runs.
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise ImportError(
            f"lc.scale needs Ray Data ({error}); install the extra: pip install 'lc-utils[scale]'"
        ) from error
    return ray


def start_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_memory: int | None = 500 * 2**20,
    runtime_env: dict | None = None,
    temp_dir: str | None = None,
) -> bool:
    """Attach to a Ray cluster, or start a local one; returns True if this call started Ray.

    ``address`` (else the ``RAY_ADDRESS`` environment variable) attaches to an existing cluster,
    e.g. ``"ray://head:10001"`` or ``"auto"``. Without one, a local Ray starts with ``num_cpus``
    cores (default: all of this machine's), no dashboard, an object store of
    ``object_store_memory`` bytes, and its logs and sockets under ``temp_dir`` (keep that path
    short: Unix socket paths are limited to about 100 characters). A Ray already running in this
    process is left as it is. Stop it with ``ray.shutdown()``.

    A node that does not come up in time (a busy host: Ray 2.60 gives it a fixed 30 s) is
    started once more, with a warning; if it fails again, ``RuntimeError`` says so, what to do,
    and names ``RAY_raylet_start_wait_time_s``, which lengthens the core worker's own wait for
    the node. Introduced in notebook 09_scaling_out.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    options = {"include_dashboard": False, "log_to_driver": False, "runtime_env": runtime_env}
    if address:
        options["address"] = address
    else:
        # "local" always starts a fresh instance, never one some other process left running.
        options.update(
            address="local",
            num_cpus=num_cpus or os.cpu_count(),
            object_store_memory=object_store_memory,
            _temp_dir=temp_dir,
        )
    for attempt in (1, 2):
        try:
            ray.init(**options)
            break
        except Exception as error:
            if not any(sign in str(error) for sign in _START_TIMEOUT_SIGNS):
                raise
            # Clear what the failed start left behind, so that the next start is a clean one.
            ray.shutdown()
            if attempt == 1:
                warnings.warn(
                    f"Ray's node did not start in time ({first_line(error, 120)}); starting it "
                    "once more",
                    RuntimeWarning,
                    stacklevel=2,
                )
            else:
                where = f"at {address!r}" if address else "locally"
                raise RuntimeError(
                    f"Ray's node did not start in time {where}, twice ({first_line(error, 160)}"
                    "); the host is probably overloaded. Retry when it is quieter, or start Ray "
                    "once yourself (ray start --head) and pass address='auto'. The environment "
                    "variable RAY_raylet_start_wait_time_s (seconds, set before Python starts) "
                    "lengthens the core worker's wait for its node; Ray 2.60's own start-up "
                    "check waits a fixed 30 s"
                ) from error
    return True
