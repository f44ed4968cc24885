"""How many intra-op threads a CPU run uses: chosen, never inherited.

A fixed count (``--threads N``, or ``OMP_NUM_THREADS`` when the user set it; one on the CPU otherwise) is kept
for the whole run, so a seed gives the same numbers on a busy machine and an idle one. ``--threads auto``
runs under a :class:`ThreadGovernor` instead: it starts on one thread and, every second or so, gives itself
the cores other processes leave idle. PyTorch's threads spin at barriers, so a second thread on a core
another job holds slows both processes about ten times (docs/bench.md, "Threads"), while one thread alone
leaves a core of an idle machine unused. The thread count changes the order of a reduction, so a governed
run's numbers depend on the machine's load.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import pytorch_lightning as pl
import torch

from .checks import integer

AUTO = "auto"

# (CPU seconds the whole machine has been busy, CPU seconds this process has used) since some fixed moment.
CpuReader = Callable[[], "tuple[float, float] | None"]


def resolve_threads(threads: int | str | None, device: torch.device) -> int | str:
    """The thread count a run uses, or :data:`AUTO` for a governed one.

    Given: that many (``"auto"``: governed). Else ``OMP_NUM_THREADS`` when the user set it; else one on the
    CPU, where these small supernets gain little from more threads and lose ten times when a second thread
    shares a core with another job (docs/bench.md, "Threads"); on CUDA, PyTorch's default (the host threads
    only feed the device).
    """
    if threads == AUTO:
        return AUTO
    if threads is not None:
        if isinstance(threads, str) and threads.isdigit():
            threads = int(threads)
        if isinstance(threads, str):
            raise ValueError(f"threads: expected a positive integer or 'auto', got {threads!r}")
        return integer("threads", threads)
    environment = os.environ.get("OMP_NUM_THREADS", "")
    if environment.isdigit() and int(environment) >= 1:
        return int(environment)
    return 1 if device.type == "cpu" else torch.get_num_threads()


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def read_cpu_times() -> tuple[float, float] | None:
    """Busy CPU seconds of the machine (``/proc/stat``) and of this process; None where there is no /proc."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle and iowait; the rest (user ... steal) is busy
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), time.process_time()


class ThreadGovernor:
    """Sets torch's intra-op threads to the cores other processes leave idle, re-checked as the run goes.

    A core counts as free while other processes use less than a quarter of it (this process's own CPU
    time is left out, so its spinning threads do not count against it). Threads drop at once when
    another job starts and rise only after ``rise_after`` checks in a row allow it, so a job that pauses
    for a moment does not pull a second thread onto its core. ``reader`` and ``clock`` are injectable
    (tests drive them by steps).

    >>> governor = ThreadGovernor(cores=2)
    >>> governor.threads
    1
    """

    def __init__(self, cores: int | None = None, *, interval: float = 1.0, rise_after: int = 3,
                 reader: CpuReader = read_cpu_times, clock: Callable[[], float] = time.monotonic,
                 apply: Callable[[int], None] = torch.set_num_threads) -> None:
        self.cores = integer("cores", cores) if cores is not None else usable_cores()
        self.interval, self.rise_after = interval, integer("rise_after", rise_after)
        self.reader, self.clock, self.apply = reader, clock, apply
        self.threads = 1
        self.apply(1)
        self._allowed_higher = 0
        self._last = (self.clock(), self.reader())
        self._thread_seconds = 0.0  # threads x seconds since the last epoch_mean()
        self._seconds = 0.0

    def free_cores(self, other_busy: float) -> int:
        """Threads for this process when other processes keep ``other_busy`` cores busy."""
        return max(1, min(self.cores, int(self.cores - other_busy + 0.25)))

    def update(self) -> int:
        """Re-check the load if ``interval`` has passed; returns the thread count now."""
        now = self.clock()
        elapsed = now - self._last[0]
        if elapsed < self.interval:
            return self.threads
        reading = self.reader()
        previous = self._last[1]
        self._thread_seconds += self.threads * elapsed
        self._seconds += elapsed
        self._last = (now, reading)
        if reading is None or previous is None:
            return self.threads
        other_busy = ((reading[0] - previous[0]) - (reading[1] - previous[1])) / elapsed
        wanted = self.free_cores(other_busy)
        if wanted > self.threads:
            self._allowed_higher += 1
            if self._allowed_higher < self.rise_after:
                return self.threads
        self._allowed_higher = 0
        if wanted != self.threads:
            self.threads = wanted
            self.apply(wanted)
        return self.threads

    def epoch_mean(self) -> float:
        """Mean thread count over the time since the last call (the history's ``threads`` column)."""
        mean = self._thread_seconds / self._seconds if self._seconds else float(self.threads)
        self._thread_seconds = self._seconds = 0.0
        return mean


class GovernorCallback(pl.Callback):
    """Runs a :class:`ThreadGovernor` at the end of every training and validation step."""

    def __init__(self, governor: ThreadGovernor) -> None:
        self.governor = governor

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        self.governor.update()

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        self.governor.update()


def start_threads(threads: int | str) -> ThreadGovernor | None:
    """Applies a resolved thread count; for :data:`AUTO`, starts and returns the governor."""
    if threads == AUTO:
        return ThreadGovernor()
    torch.set_num_threads(int(threads))
    return None


def record_threads(governor: ThreadGovernor | None) -> Callable[[dict, Any], None]:
    """An epoch listener that writes the epoch's (mean) thread count into the history's ``threads`` column."""

    def listener(row: dict, search_module: Any) -> None:
        row["threads"] = governor.epoch_mean() if governor is not None else float(torch.get_num_threads())

    return listener
