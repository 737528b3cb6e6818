"""Starts the processes of a multi-process run (JAX's own multi-process runtime, ``jax.distributed``).

    python -m experiments.launch --processes=2 --devices=2 -- experiments.sweep --shard=true --out runs/sweep
    python -m experiments.launch --hosts=node0,node1 --port=1234 -- experiments.sweep --shard=true --out runs/sweep
    python -m experiments.launch --slurm -- experiments.sweep --shard=true --out runs/sweep

On this machine (the first form) it starts ``--processes`` copies of the experiment after the ``--``, each
through ``worker``: process ``i`` calls ``rnnjax.parallel.initialize(coordinator, N, i)`` before anything
else touches JAX, then runs the module as ``python -m`` would. ``--devices=k`` gives each process ``k``
CPU devices (``--xla_force_host_platform_device_count``), so a 2 × 2 run has 4 devices in one mesh. The
launcher waits for all of them; when one exits with an error or is killed, it stops the others (SIGTERM,
then SIGKILL after ``--grace`` seconds) and exits non-zero with the process named, so a dead process never
leaves the rest hanging in a collective. Process 0 writes the run's files; the others' output is printed
with a ``[i]`` prefix.

On a cluster it only prints what to run: ``--hosts`` one ``ssh`` command per host (the first host is the
coordinator), ``--slurm`` one ``srun`` line (JAX then reads the process count and coordinator from SLURM).
Every host needs this checkout at the same path and, for checkpoints, a shared file system.
"""

from __future__ import annotations

import os
import runpy
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from experiments import _cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_command(coordinator: str | None, processes: int | None, process_id: int | str | None, target: list[str],
                   python: str = sys.executable) -> list[str]:
    """The command of one process: ``python -m experiments.launch worker ... -- MODULE ARGS``."""
    cmd = [python, "-m", "experiments.launch", "worker"]
    if coordinator is not None:
        cmd += [f"--coordinator={coordinator}", f"--processes={processes}", f"--process_id={process_id}"]
    return cmd + ["--", *target]


def _relay(stream, prefix: str):
    for line in iter(stream.readline, b""):
        sys.stderr.buffer.write(prefix.encode() + line)
        sys.stderr.flush()


def launch_local(target: list[str], processes: int, devices: int | None, grace: float = 10.0, port: int | None = None) -> int:
    """Runs ``processes`` workers of ``target`` here; returns 0 when all finish cleanly, else a non-zero status
    after stopping the rest."""
    coordinator = f"127.0.0.1:{port or _free_port()}"
    env = dict(os.environ)
    if devices is not None:
        flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
        env["JAX_PLATFORMS"] = "cpu"
    procs, relays = [], []
    for i in range(processes):
        quiet = i > 0
        proc = subprocess.Popen(worker_command(coordinator, processes, i, target), env=env,
                                stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
        if quiet:
            relay = threading.Thread(target=_relay, args=(proc.stdout, f"[{i}] "), daemon=True)
            relay.start()
            relays.append(relay)
        procs.append(proc)

    def forward(signum, _frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                print(f"launch: process {i} of {processes} {how}; stopping the others", file=sys.stderr, flush=True)
                _stop([p for p in procs if p.poll() is None], grace)
                return code if code > 0 else 128 - code
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for relay in relays:
            relay.join(timeout=5)


def _stop(procs, grace: float):
    for p in procs:
        p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cluster_commands(target: list[str], hosts: list[str] | None, port: int, slurm: bool, cwd: str) -> list[str]:
    """What to run on a cluster: one ``ssh`` line per host (the first is the coordinator), or one ``srun``."""
    if slurm:
        return [f"srun --ntasks-per-node=1 bash -c {shlex.quote(f'cd {shlex.quote(cwd)} && ' + shlex.join(worker_command(None, None, None, target, 'python')))}"]
    lines = []
    for i, host in enumerate(hosts):
        cmd = shlex.join(worker_command(f"{hosts[0]}:{port}", len(hosts), i, target, "python"))
        lines.append(f"ssh {shlex.quote(host)} {shlex.quote(f'cd {shlex.quote(cwd)} && {cmd}')}")
    return lines


def worker(args) -> None:
    """One process: joins the run, then runs the module as ``python -m`` does."""
    from rnnjax import parallel

    if args.coordinator is None:
        parallel.initialize()  # read from the cluster (SLURM, Open MPI, ...)
    else:
        parallel.initialize(args.coordinator, args.processes, args.process_id)
    module, *rest = args.target
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _split(argv):
    if "--" not in argv:
        raise _cli.ConfigError("give the experiment after --, e.g. python -m experiments.launch --processes=2 -- experiments.sweep --quick")
    i = argv.index("--")
    target = argv[i + 1:]
    if not target or not target[0].startswith("experiments."):
        raise _cli.ConfigError(f"after -- comes an experiment module (experiments.NAME ...), got {' '.join(target) or 'nothing'}")
    return argv[:i], target


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, target = _split(argv)
    if own[:1] == ["worker"]:
        parser = _cli.Parser(prog="python -m experiments.launch worker")
        parser.add_argument("--coordinator", default=None)
        parser.add_argument("--processes", type=_cli.positive_int, default=None)
        parser.add_argument("--process_id", type=_cli.non_negative_int, default=None)
        args = parser.parse_args(own[1:])
        args.target = target
        return worker(args)
    parser = _cli.Parser(prog="python -m experiments.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=_cli.positive_int, default=2, help="processes on this machine (default: 2)")
    parser.add_argument("--devices", type=_cli.positive_int, default=None, help="CPU devices per process (default: what JAX finds)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL when stopping (default: 10)")
    parser.add_argument("--port", type=_cli.positive_int, default=None, help="the coordinator's port (default: a free one; 1234 on a cluster)")
    parser.add_argument("--hosts", default=None, help="comma-separated hosts: print one ssh command per host instead of running")
    parser.add_argument("--slurm", action="store_true", help="print the srun command instead of running")
    args = parser.parse_args(own)
    if args.hosts is not None or args.slurm:
        hosts = [h for h in (args.hosts or "").split(",") if h]
        if not args.slurm and not hosts:
            raise _cli.ConfigError("--hosts needs at least one host name")
        for line in cluster_commands(target, hosts, args.port or 1234, args.slurm, os.getcwd()):
            print(line)
        return 0
    code = launch_local(target, args.processes, args.devices, args.grace, args.port)
    if code:
        raise SystemExit(code)
    return 0


if __name__ == "__main__":
    main()
