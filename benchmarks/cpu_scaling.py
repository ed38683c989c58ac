"""How far does this machine scale from one busy core to all of them? The ceiling of 1-vs-N workers.

Run::

    .venv/bin/python benchmarks/cpu_scaling.py [--procs 2] [--steps 40] [--repeat 2]

Runs the same single-threaded LSTM training loop (hidden 16, batch 256, 140 steps of 40 features:
the shape of a `make bench-scale` shard step) in one process, then in ``--procs`` processes at
once, each pinned to its own core, and prints the throughput ratio ``procs x t_one / max(t_all)``.
On an ideal machine it is ``procs``; virtual CPUs that share a physical core or a host that slows
under load give less, and no scheduler (Ray or other) can beat it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable

LOOP = r"""
import os, sys, time
os.environ["OMP_NUM_THREADS"] = "1"
import torch
torch.set_num_threads(1)
torch.manual_seed(0)
lstm = torch.nn.LSTM(40, 16, batch_first=True)
x = torch.randn(256, 140, 40)
opt = torch.optim.AdamW(lstm.parameters())
for _ in range(3):  # warm-up
    lstm(x)[0].sum().backward()
t0 = time.perf_counter()
for _ in range(int(sys.argv[1])):
    opt.zero_grad()
    lstm(x)[0].sum().backward()
    opt.step()
print(time.perf_counter() - t0)
"""


def _pin(core: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, [core])


def run(n: int, steps: int) -> list[float]:
    """Seconds of ``steps`` training steps in each of ``n`` processes started together."""
    cores = sorted(os.sched_getaffinity(0))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOOP, str(steps)],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_pin(cores[i % len(cores)]),
        )
        for i in range(n)
    ]
    return [float(p.communicate(timeout=600)[0]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--procs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.repeat):
        one = run(1, args.steps)[0]
        many = run(args.procs, args.steps)
        ratio = args.procs * one / max(many)
        print(
            json.dumps(
                {"one_s": round(one, 3), "all_s": [round(t, 3) for t in many], "ratio": round(ratio, 2)}
            )
        )


if __name__ == "__main__":
    main()
