"""How far does this machine scale from one busy core to all of them? The ceiling of 1-vs-N workers.

Run::

    .venv/bin/python benchmarks/cpu_scaling.py [--procs 2] [--seconds 5] [--repeat 2]

Times our LSTM's float32 training step (:func:`inventory_scale.bench.hardware.train_windows_per_s`,
one torch thread, at the `make bench-scale` shape: hidden 16, 1 layer, context 112, horizon 28,
batch 256) in one process, then in ``--procs`` processes at once, each pinned to its own core, and
prints the throughput ratio ``sum(windows/s of all) / windows/s of one``. On an ideal machine it
is ``procs``; virtual CPUs that share a physical core or a host that slows under load give less,
and no scheduler (Ray or other) can beat it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable

CHILD = """
import sys
from inventory_scale.bench.hardware import LSTMShape, train_windows_per_s
shape = LSTMShape(hidden_size=16, num_layers=1, context_length=112, horizon=28, batch_size=256)
print(train_windows_per_s(shape, threads=1, seconds=float(sys.argv[1])))
"""


def _pin(core: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, [core])


def run(n: int, seconds: float) -> list[float]:
    """Training windows/s of each of ``n`` processes started together, each on its own core."""
    cores = sorted(os.sched_getaffinity(0))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=_pin(cores[i % len(cores)]),
        )
        for i in range(n)
    ]
    return [float(p.communicate(timeout=600)[0]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.repeat):
        one = run(1, args.seconds)[0]
        many = run(args.procs, args.seconds)
        print(
            json.dumps(
                {
                    "one_windows_per_s": round(one),
                    "each_windows_per_s": [round(w) for w in many],
                    "ratio": round(sum(many) / one, 2),
                }
            )
        )


if __name__ == "__main__":
    main()
