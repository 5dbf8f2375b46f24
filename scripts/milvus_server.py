"""Run the real Milvus 2.3.5 standalone server (PyPI package ``milvus==2.3.5``) in the foreground.

Meant to be started by ``scripts/test_server.sh`` inside ``unshare --net`` with the Python of
``.venv-milvus-server``; it needs only the standard library and the ``milvus`` package.

    python scripts/milvus_server.py --data-dir DIR --ready-file FILE [--port 19530]

The server's gRPC and etcd ports bind every address, so this refuses to start unless the network
namespace holds nothing but loopback. Once the health check answers, the URI is written to
``--ready-file``. SIGTERM or SIGINT stops the server: Milvus 2.3.5's own graceful stop gets
``--stop-timeout`` seconds (its default, 1800, would stall CI for half an hour), then SIGKILL.
Exit status: 0 stopped, 2 did not start or died, 3 refused (network visible), 4 stop hung.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# The advertised address of every component; the ports still bind all addresses of the namespace.
COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")


def network_interfaces() -> list[str]:
    # /proc/net/dev follows the reader's network namespace; /sys/class/net shows the namespace
    # sysfs was mounted in, which `unshare --net` alone does not change.
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines)


def log_tail(data_dir: Path, lines: int = 15, width: int = 240) -> str:
    parts = []
    for name in ("milvus-stdout.log", "milvus-stderr.log"):
        path = data_dir / "logs" / name
        if path.exists():
            # Milvus log lines carry whole stack traces; the first few hundred characters say
            # what happened.
            text = [line[:width] for line in path.read_text(errors="replace").splitlines()]
            text = text[-lines:]
            parts.append(
                f"--- {path} (last {len(text)} lines, cut at {width} characters)\n"
                + "\n".join(text)
            )
    return "\n".join(parts) or f"(no logs under {data_dir / 'logs'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, type=Path, help="fresh directory for data")
    parser.add_argument("--ready-file", required=True, type=Path, help="gets the URI when ready")
    parser.add_argument("--port", type=int, default=19530, help="gRPC port (default 19530)")
    parser.add_argument("--bin-cache", type=Path, default=None, help="reuse unpacked binaries")
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="seconds (default 180)")
    parser.add_argument("--stop-timeout", type=int, default=5, help="seconds (default 5)")
    args = parser.parse_args(argv)

    interfaces = network_interfaces()
    if interfaces != ["lo"]:
        print(
            f"milvus_server: refusing to start: network interfaces {interfaces} are visible; the "
            "server binds every address, so run it inside `unshare --net` where only 'lo' exists "
            "(scripts/test_server.sh does this)",
            file=sys.stderr,
        )
        return 3

    from milvus import MilvusServer, __version__

    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if args.bin_cache is not None:
        # Unpacking the bundled binaries (about 200 MB of lzma) costs seconds on every start; the
        # package checks an md5 per file, so a shared directory is refreshed when the wheel changes.
        args.bin_cache.mkdir(parents=True, exist_ok=True)
        (data_dir / "bin").symlink_to(args.bin_cache.resolve(), target_is_directory=True)

    server = MilvusServer(wait_for_started=False, proxy_port=args.port)
    server.set_base_dir(str(data_dir))
    # The bundled default is 1800 s, which turns a stuck shutdown into a half-hour CI hang.
    server.config.set("common.gracefulStopTimeout", args.stop_timeout)
    for component in COMPONENTS:
        server.config.set(f"{component}.ip", "127.0.0.1")

    stop_requested = threading.Event()

    def request_stop(signum, _frame):
        print(f"milvus_server: got {signal.Signals(signum).name}, stopping", flush=True)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    started = time.monotonic()
    server.start()
    process: subprocess.Popen = server.server_proc
    uri = f"http://127.0.0.1:{args.port}"
    try:
        server.wait_started(timeout=int(args.ready_timeout * 1000))
    except (TimeoutError, RuntimeError) as error:
        print(f"milvus_server: Milvus {__version__} did not start: {error}", file=sys.stderr)
        print(log_tail(data_dir), file=sys.stderr)
        process.kill()
        process.wait()
        server.server_proc = None
        server.stop()
        return 2
    print(
        f"milvus_server: Milvus {__version__} ready at {uri} after "
        f"{time.monotonic() - started:.1f} s (pid {process.pid}, data {data_dir})",
        flush=True,
    )
    args.ready_file.write_text(uri + "\n")

    while not stop_requested.wait(0.5):
        if process.poll() is not None:
            print(
                f"milvus_server: Milvus exited by itself with status {process.returncode}",
                file=sys.stderr,
            )
            print(log_tail(data_dir), file=sys.stderr)
            server.server_proc = None
            server.stop()
            return 2

    stopping = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=args.stop_timeout + 10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # The package's own stop() would SIGKILL after one second; here it only closes log files.
    server.server_proc = None
    server.stop()
    seconds = time.monotonic() - stopping
    log = (data_dir / "logs" / "milvus-stdout.log").read_text(errors="replace")
    if process.returncode == 0:
        how, status = "cleanly", 0
    elif process.returncode == -signal.SIGKILL:
        # Seen when an index build is still running: Milvus waits for it, past its own timeout.
        how, status = "by SIGKILL: the graceful stop hung", 4
    elif "All cleanup done" in log:
        # Milvus 2.3.5 standalone stops every component, then panics in CloseEtcdClient
        # ("context canceled"); nothing is left running or half-written by then.
        how, status = "after all components stopped (then its known exit panic)", 0
    else:
        how, status = "abnormally; see the logs", 4
    print(
        f"milvus_server: Milvus stopped {how} in {seconds:.1f} s "
        f"(exit status {process.returncode})",
        flush=True,
    )
    if status:
        print(log_tail(data_dir), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
