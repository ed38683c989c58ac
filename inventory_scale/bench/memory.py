"""Peak resident memory of a process and all its descendants, sampled from ``/proc``.

A :class:`TreeSampler` thread walks the process tree of one pid every ``interval`` seconds and
keeps timestamped samples of the RSS of the root process, of its largest Ray worker and of the
whole tree (root + Ray's GCS, raylet, agents and workers). RSS counts shared pages once per
process, so the tree figure is an upper bound on what the tree really holds::

    sampler = TreeSampler(proc.pid)
    sampler.start()
    proc.wait()
    sampler.stop()
    sampler.peaks()       # {"driver_peak_mib": ..., "worker_peak_mib": ..., "tree_peak_mib": ...}

Linux only (reads ``/proc``); elsewhere every sample is empty and the peaks are 0.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20


def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, RSS bytes, command line) of every process, from ``/proc``."""
    out: dict[int, tuple[int, int, str]] = {}
    if not os.path.isdir("/proc"):
        return out
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry.name}/statm") as f:
                rss = int(f.read().split()[1]) * PAGE
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry.name)] = (ppid, rss, cmd)
    return out


class TreeSampler(threading.Thread):
    """Peak RSS of a process, its largest Ray worker and its whole process tree, sampled from /proc.

    Args:
        pid: root of the tree.
        interval: seconds between samples.
    """

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int, int, int]] = []  # (time, driver, largest worker, tree)
        self.workers_seen: set[int] = set()
        self._stop_event = threading.Event()

    @staticmethod
    def _is_worker(cmd: str) -> bool:
        return "default_worker.py" in cmd or (cmd.startswith("ray::") and "Agent" not in cmd)

    def sample(self) -> None:
        """Take one sample of the tree now."""
        procs = process_table()
        tree, frontier = {self.pid}, {self.pid}
        while frontier:
            frontier = {p for p, (ppid, _, _) in procs.items() if ppid in frontier and p not in tree}
            tree |= frontier
        total = driver = worker = 0
        for pid in tree & procs.keys():
            _, rss, cmd = procs[pid]
            total += rss
            if pid == self.pid:
                driver = rss
            elif self._is_worker(cmd):
                worker = max(worker, rss)
                self.workers_seen.add(pid)
        self.samples.append((time.time(), driver, worker, total))

    def run(self) -> None:
        """Sample until :meth:`stop`."""
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        self.join()

    def peaks(self, start: float = 0.0, end: float = float("inf")) -> dict[str, Any]:
        """Peak RSS (MiB) of the driver, the largest worker and the tree between two times."""
        window = [x for x in self.samples if start <= x[0] <= end] or [(0.0, 0, 0, 0)]
        return {
            "driver_peak_mib": round(max(x[1] for x in window) / MIB),
            "worker_peak_mib": round(max(x[2] for x in window) / MIB),
            "tree_peak_mib": round(max(x[3] for x in window) / MIB),
        }
