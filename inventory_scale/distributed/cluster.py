"""A local multi-node Ray cluster on 127.0.0.1 for ``make cluster-up`` / ``make cluster-down``.

Starts one head and ``--workers`` worker nodes with ``ray start``, every process bound to
127.0.0.1 (node IP, dashboard, client server), with fresh free ports, token authentication on
(``RAY_AUTH_MODE=token``, token in ``~/.ray/auth_token``, generated once) and its own temp dir,
then waits until every node has registered. The addresses go to ``<state>/cluster.json`` and
``<state>/address`` (the dashboard URL ``make submit`` and ``ray job submit`` use)::

    python -m inventory_scale.distributed.cluster up --workers 2 --cpus-per-node 1
    RAY_ADDRESS=$(cat .ray/address) ray job submit -- inventory-scale pipeline ray=cluster ...
    python -m inventory_scale.distributed.cluster down

``down`` stops only this cluster's processes (those whose command line names its temp dir),
never other Ray instances on the machine, as ``ray stop`` would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("inventory_scale.cluster")

LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


# Every process of the cluster must see RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, or Ray "resolves"
# 127.0.0.1 to the machine's external IP when its agents and job drivers connect. But `ray start`
# refuses to join a worker node while that flag is 0. So the `ray` CLI runs with the flag 0 in
# its environment (inherited by raylets, agents and workers), while in the CLI process itself
# the join check is let through and the node IP is pinned to 127.0.0.1.
_RAY_CLI = (
    "import os, sys; os.environ['RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'] = '0'; "
    "import ray._private.ray_constants as rc, ray._private.services as s; "
    "rc.ENABLE_RAY_CLUSTER = True; "
    "s.resolve_ip_for_localhost = lambda host: host; "
    "s.get_node_ip_address = lambda address=None: '127.0.0.1'; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())"
)


def _env() -> dict[str, str]:
    """Environment of the cluster's processes: token auth on, loopback, the venv first on PATH."""
    env = dict(os.environ)
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _ray(*args: str) -> list[str]:
    return [sys.executable, "-c", _RAY_CLI, *args]


def _run(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def _node_ports() -> list[str]:
    """Ports a worker node would otherwise take from fixed defaults shared with the head."""
    return [
        f"--node-manager-port={_free_port()}",
        f"--object-manager-port={_free_port()}",
        f"--metrics-export-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--dashboard-agent-grpc-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}",
    ]


def up(
    state: Path, workers: int, cpus_per_node: int, head_cpus: int, timeout_s: float = 120.0
) -> dict[str, Any]:
    """Start head + ``workers`` nodes; returns (and writes) the cluster's addresses."""
    if (state / "cluster.json").exists():
        raise RuntimeError(f"a cluster is already up ({state / 'cluster.json'}); run make cluster-down first")
    state.mkdir(parents=True, exist_ok=True)
    (state / ".gitignore").write_text("*\n")  # cluster state never goes into git
    temp = Path(f"/tmp/inventory-scale-ray-{os.getpid()}")
    env = _env()
    _run([str(Path(sys.executable).parent / "ray"), "get-auth-token", "--generate"], env)
    gcs, dash, client = _free_port(), _free_port(), _free_port()
    info: dict[str, Any] = {
        "gcs_address": f"{LOOPBACK}:{gcs}",
        "dashboard": f"http://{LOOPBACK}:{dash}",
        "client": f"ray://{LOOPBACK}:{client}",
        "temp_dir": str(temp),
        "workers": workers,
    }
    (state / "cluster.json").write_text(json.dumps(info, indent=2) + "\n")
    common = [f"--node-ip-address={LOOPBACK}", f"--temp-dir={temp}", "--disable-usage-stats"]
    _run(
        _ray(
            "start",
            "--head",
            f"--port={gcs}",
            f"--num-cpus={head_cpus}",
            f"--dashboard-host={LOOPBACK}",
            f"--dashboard-port={dash}",
            f"--ray-client-server-port={client}",
            *common,
            *_node_ports(),
        ),
        env,
    )
    for _ in range(workers):
        _run(
            _ray(
                "start", f"--address={LOOPBACK}:{gcs}", f"--num-cpus={cpus_per_node}", *common, *_node_ports()
            ),
            env,
        )
    _wait_for_nodes(info["gcs_address"], workers + 1, timeout_s)
    (state / "address").write_text(info["dashboard"] + "\n")
    log.info("cluster up: head + %d worker(s); RAY_ADDRESS=%s", workers, info["dashboard"])
    return info


def _wait_for_nodes(address: str, n: int, timeout_s: float) -> None:
    from inventory_scale.distributed.runner import import_ray

    os.environ["RAY_AUTH_MODE"] = "token"
    ray = import_ray()  # with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, 127.0.0.1 stays 127.0.0.1
    ray.init(address=address, logging_level=logging.WARNING)
    try:
        deadline = time.monotonic() + timeout_s
        while sum(node["Alive"] for node in ray.nodes()) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sum(x['Alive'] for x in ray.nodes())} of {n} Ray nodes came up")
            time.sleep(0.5)
    finally:
        ray.shutdown()


def _refers_to(pid: str, temp_dir: str) -> bool:
    proc = Path("/proc") / pid
    try:
        if temp_dir in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
            return True
        return any(temp_dir in os.readlink(fd) for fd in (proc / "fd").iterdir())
    except OSError:
        return False


def _cluster_pids(temp_dir: str) -> list[int]:
    """This cluster's processes: those whose command line or open files name its temp dir
    (raylets, GCS, dashboard, agents, workers, whose titles Ray rewrites), and their children."""
    own = str(os.getpid())
    procs = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and p.name != own]
    found = {int(p) for p in procs if _refers_to(p, temp_dir)}
    parents: dict[int, int] = {}
    zombies: set[int] = set()
    for p in procs:
        with contextlib.suppress(OSError, ValueError, IndexError):
            state, ppid = (Path("/proc") / p / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            parents[int(p)] = int(ppid)
            if state == "Z":  # exited, waiting to be reaped: nothing left to stop
                zombies.add(int(p))
    grew = True
    while grew:
        kids = {pid for pid, ppid in parents.items() if ppid in found and pid not in found}
        found |= kids
        grew = bool(kids)
    return sorted(found - zombies)


def down(state: Path, timeout_s: float = 30.0) -> int:
    """Stop this cluster's processes (TERM, then KILL after ``timeout_s``); returns how many."""
    path = state / "cluster.json"
    if not path.exists():
        log.info("no cluster is up (%s missing)", path)
        return 0
    temp = json.loads(path.read_text())["temp_dir"]
    pids = _cluster_pids(temp)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _cluster_pids(temp) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _cluster_pids(temp):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    path.unlink()
    (state / "address").unlink(missing_ok=True)
    shutil.rmtree(temp, ignore_errors=True)
    log.info("cluster down: stopped %d process(es)", len(pids))
    return len(pids)


def main(argv: list[str] | None = None) -> int:
    """``python -m inventory_scale.distributed.cluster up|down [--state .ray] [--workers N]``."""
    parser = argparse.ArgumentParser(prog="python -m inventory_scale.distributed.cluster")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--state", default=".ray", help="folder for cluster.json and address")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--head-cpus", type=int, default=0, help="CPUs the head offers to tasks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    state = Path(args.state).absolute()
    try:
        if args.action == "up":
            info = up(state, args.workers, args.cpus_per_node, args.head_cpus)
            sys.stdout.write(f"RAY_ADDRESS={info['dashboard']}  (gcs {info['gcs_address']})\n")
        else:
            down(state)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        sys.stderr.write(f"cluster {args.action}: {e}\n")
        if args.action == "up":
            down(state)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
