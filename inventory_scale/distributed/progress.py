"""Progress of a fan-out: a rich bar on a terminal, plain log lines otherwise.

The runner calls :meth:`Progress.update` after each finished task. On a TTY (stderr) this draws a
rich bar with tasks done / failed and the ETA; when stderr is a pipe or a file (CI, ``ray job``
logs, tests) it logs one line at most every ``interval_s`` seconds and one at the end, so logs
stay readable. No Ray here.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("inventory_scale.distributed.runner")


def _eta(done: int, total: int, elapsed: float) -> str:
    if done == 0 or done >= total:
        return "-"
    secs = elapsed / done * (total - done)
    return f"{int(secs // 60)}m{int(secs % 60):02d}s"


class Progress:
    """Tasks done / failed / ETA for one stage.

    Args:
        stage: stage name shown in the bar and the log lines.
        total: number of tasks.
        interval_s: minimum seconds between two plain log lines.
        rich: force the rich bar on (True) or off (False); None = only when stderr is a TTY.
    """

    def __init__(self, stage: str, total: int, *, interval_s: float = 10.0, rich: bool | None = None) -> None:
        self.stage = stage
        self.total = total
        self.done = 0
        self.failed = 0
        self.interval_s = interval_s
        self.use_rich = sys.stderr.isatty() if rich is None else rich
        self._t0 = time.perf_counter()
        self._last_log = self._t0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.use_rich and self.total > 0:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("failed {task.fields[failed]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.stage, total=self.total, failed=0)
        return self

    def update(self, status: str) -> None:
        """Count one finished task with its status (``ok``, ``skipped`` or ``failed``)."""
        self.done += 1
        self.failed += status == "failed"
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed)
            return
        now = time.perf_counter()
        if now - self._last_log >= self.interval_s and self.done < self.total:
            self._last_log = now
            log.info(
                "%s: %d/%d tasks done, %d failed, eta %s",
                self.stage,
                self.done,
                self.total,
                self.failed,
                _eta(self.done, self.total, now - self._t0),
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
