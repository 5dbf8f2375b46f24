"""Shared helpers for the benchmark scripts: the host canary, interleaved timing, tables, JSON.

Absolute times on these machines drift, and the host has an intermittent slow state in which one
512-token forward takes 0.6-1.0 s instead of 0.13-0.19 s for minutes at a time. So every script

* runs the paths it compares **interleaved**, round by round, in an order that rotates each round,
  so that a slow spell hits all of them rather than one;
* reports **medians** over rounds, and ratios against a baseline measured in the same rounds
  (the median of the per-round ratios, so a round that was slow for everyone cancels out);
* times a fixed **canary** forward before and after every round and flags rounds where the host
  was more than ``SLOW_FACTOR`` times slower than its best canary.

Results go to ``outputs/bench/<name>.json`` with the machine, the date and the command line.
"""

from __future__ import annotations

import datetime as _datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = ROOT / "outputs" / "bench"
# A canary this much slower than the run's fastest canary marks the round as taken while the host
# was in its slow state (measured: 3-6x slower, far beyond ordinary jitter of 10-20%).
SLOW_FACTOR = 1.5


def environment(device: str = "cpu") -> dict:
    """What the numbers were measured on: machine, software versions, date and command."""
    import torch

    info = {
        "date": _datetime.datetime.now(_datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - every benchmark environment has it
        pass
    return info


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so that a timer stops when the work is done, not queued."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class Canary:
    """One fixed forward pass of the model: the host's speed, independent of the code under test.

    The same 512 token ids (a fixed seed) go through ``model.forward`` every time; the median of
    ``repeats`` passes is the canary time.
    """

    def __init__(self, model, length: int | None = None, repeats: int = 5) -> None:
        import numpy as np

        self.model = model
        self.repeats = repeats
        length = min(length or model.max_length, model.max_length)
        rng = np.random.default_rng(0)
        # Ordinary word-piece ids, away from the special and unused ids at the start of the vocab.
        vocabulary = getattr(model.tokenizer, "vocab_size", 30_000)
        self.ids = rng.integers(1_000, max(1_001, vocabulary - 1), size=length).astype("int64")
        self.device = str(model.device)
        self.model.forward([self.ids])  # warm-up: the first pass allocates

    def measure(self) -> float:
        times = []
        for _ in range(self.repeats):
            started = time.perf_counter()
            self.model.forward([self.ids])
            synchronize(self.device)
            times.append(time.perf_counter() - started)
        return statistics.median(times)


def interleave(
    paths: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    canary: Callable[[], float],
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> dict:
    """Run every path once per round, rotating the order each round; time each run.

    Returns ``{"seconds": {path: [per round]}, "canary_before": [...], "canary_after": [...],
    "order": [[path, ...] per round], "slow_rounds": [round indices], "last": {path: result}}``;
    ``last`` keeps the result of each path's last run, for checks made after the timing.
    """
    if rounds < 1:
        raise ValueError(f"rounds={rounds}; run at least one round")
    names = list(paths)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    before, after, orders, last = [], [], [], {}
    for round_index in range(rounds):
        shift = round_index % len(names)
        order = names[shift:] + names[:shift]
        orders.append(order)
        before.append(canary())
        for name in order:
            synchronize(device)
            started = time.perf_counter()
            last[name] = paths[name]()
            synchronize(device)
            seconds[name].append(time.perf_counter() - started)
            log(f"  round {round_index + 1}/{rounds}  {name:<42} {seconds[name][-1]:8.2f} s")
        after.append(canary())
        log(f"  round {round_index + 1}/{rounds}  canary {before[-1]:.3f} s -> {after[-1]:.3f} s")
    fastest = min(before + after)
    slow = [r for r in range(rounds) if max(before[r], after[r]) > SLOW_FACTOR * fastest]
    return {
        "seconds": seconds,
        "canary_before": before,
        "canary_after": after,
        "order": orders,
        "slow_rounds": slow,
        "last": last,
    }


def median_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over rounds of ``numerator[r] / denominator[r]``: a ratio taken within each round."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def print_table(rows: Sequence[Mapping], columns: Sequence[str], title: str = "") -> None:
    """A plain fixed-width table; floats get three significant decimals."""

    def text(value) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    cells = [[text(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(column), *(len(c[i]) for c in cells)) for i, column in enumerate(columns)]
    if title:
        print(f"\n{title}")
    print("  ".join(column.ljust(w) for column, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(value.ljust(w) for value, w in zip(row, widths, strict=True)))


def write_json(name: str, payload: Mapping) -> Path:
    """Write ``payload`` to ``outputs/bench/<name>.json`` and return the path."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUTPUT_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return path


def host_note(timing: Mapping) -> str:
    """One line saying whether the host stayed in one state during the run."""
    slow = timing["slow_rounds"]
    canaries = timing["canary_before"] + timing["canary_after"]
    spread = f"canary {min(canaries):.3f}-{max(canaries):.3f} s"
    if not slow:
        return f"host steady ({spread})"
    return (
        f"host was slow in round(s) {[r + 1 for r in slow]} ({spread}); the medians and the "
        "per-round ratios absorb one slow round, but rerun if most rounds were slow"
    )


class ZeroNetwork:
    """Stands in for the network: final hidden states of zeros, from one reused buffer, so that
    neither a forward pass nor the stub's own allocation is timed."""

    def __init__(self, dim: int) -> None:
        import torch

        self.dim, self.buffer = dim, torch.zeros(0)

    def __call__(self, input_ids, attention_mask):
        import torch

        size = input_ids.numel() * self.dim
        if self.buffer.numel() < size:
            self.buffer = torch.zeros(size)
        return (self.buffer[:size].view(*input_ids.shape, self.dim),)


def add_topic_arguments(parser) -> None:
    """``--docs``, ``--rounds`` and ``--quick``, as every pydoc-topics script takes them; call
    ``apply_quick`` on the parsed arguments."""
    parser.add_argument("--docs", type=int, default=0, help="first N topics by id; 0 means all")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--quick", action="store_true", help="20 topics, 2 rounds")


def apply_quick(args) -> None:
    """``--quick``: 20 topics (unless ``--docs`` says otherwise) and at most 2 rounds."""
    if args.quick:
        args.docs, args.rounds = args.docs or 20, min(args.rounds, 2)


def cosine_rows(a, b):
    """Row-wise cosine of two equally shaped matrices, in float64."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
