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
    sampler.cpu_seconds() # {"driver": ..., "workers": ..., "ray_system": ...}: CPU time by role

CPU time (user + system, from ``/proc/<pid>/stat``) is the last value seen for each process, so a
process's final ``interval`` after the last sample is missed.

Linux only (reads ``/proc``); elsewhere every sample is empty and the peaks are 0.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20


TICK = os.sysconf("SC_CLK_TCK")


def process_table() -> dict[int, tuple[int, int, str, float]]:
    """pid -> (parent pid, RSS bytes, command line, CPU seconds) of every process, from ``/proc``."""
    out: dict[int, tuple[int, int, str, float]] = {}
    if not os.path.isdir("/proc"):
        return out
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid = int(fields[1])
            cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
            with open(f"/proc/{entry.name}/statm") as f:
                rss = int(f.read().split()[1]) * PAGE
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry.name)] = (ppid, rss, cmd, cpu)
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
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (role, last CPU seconds seen)
        self._stop_event = threading.Event()

    @staticmethod
    def _is_worker(cmd: str) -> bool:
        return "default_worker.py" in cmd or (cmd.startswith("ray::") and "Agent" not in cmd)

    def sample(self) -> None:
        """Take one sample of the tree now."""
        procs = process_table()
        tree, frontier = {self.pid}, {self.pid}
        while frontier:
            frontier = {p for p, (ppid, *_) in procs.items() if ppid in frontier and p not in tree}
            tree |= frontier
        total = driver = worker = 0
        for pid in tree & procs.keys():
            _, rss, cmd, cpu = procs[pid]
            total += rss
            if pid == self.pid:
                driver, role = rss, "driver"
            elif pid in self.workers_seen or self._is_worker(cmd):
                worker, role = max(worker, rss), "workers"
                self.workers_seen.add(pid)
            else:
                role = "ray_system"
            self.cpu[pid] = (role, cpu)
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

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) by role: ``driver``, ``workers`` and ``ray_system`` (GCS,
        raylet, agents, log monitor: every other process of the tree)."""
        out = {"driver": 0.0, "workers": 0.0, "ray_system": 0.0}
        for role, cpu in self.cpu.values():
            out[role] += cpu
        return {k: round(v, 1) for k, v in out.items()}
