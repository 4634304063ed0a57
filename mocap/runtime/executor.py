"""Where independent tasks run: in this process (``local``, the default) or on a Ray cluster.

An executor maps a module-level function over ``(key, args)`` pairs and yields ``(key, result)``:
:meth:`Executor.map` in the order given, :meth:`Executor.map_unordered` as results come. Both keep
at most ``window`` tasks in flight, so a long take's chunks are not all in memory at once.

Ray (``pip install mocap[ray]``) is an existing engine: ``RayExecutor(address)`` connects to a
running cluster (``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the
others; ``address="auto"`` finds a local one), or with ``address=None`` starts a local runtime
in this process. The functions must be importable on the workers (the same ``mocap`` installed
there) and the files they read must be visible to them (arguments travel as values; the take
folders of ``mocap process SESSIONS/*`` must be on storage every node mounts at the same path).
"""

from __future__ import annotations

import logging
import os
from collections import deque

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


class Executor:
    """Runs ``fn(*args)`` for each ``(key, args)``; subclasses say where."""

    name = "local"
    workers = 1

    def map(self, fn, items):
        """Yield ``(key, fn(*args))`` in the order of ``items``."""
        for key, args in items:
            yield key, fn(*args)

    def map_unordered(self, fn, items):
        """Yield ``(key, fn(*args))`` as they finish (here: in order)."""
        return self.map(fn, items)

    def close(self) -> None:
        """Release what the executor started."""


class LocalExecutor(Executor):
    """Every task in this process, one after another (the default)."""


#: Ray's switch for clusters on a network; "0" keeps a local runtime's services on the loopback address.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RayExecutor(Executor):
    """Tasks as Ray remote functions (one CPU each).

    Args:
        address: a running cluster's address (``HOST:PORT``, or ``auto``), or None to start a
            local Ray runtime in this process (stopped by :meth:`close`).
        num_cpus: CPUs of the local runtime (None: all); ignored with an address.
        window: tasks in flight at most (default: twice the cluster's CPUs).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, window: int | None = None):
        if address is None:
            # A local runtime serves on 127.0.0.1 only: Ray would otherwise resolve the loopback
            # address to this machine's network address (read when ray is first imported).
            os.environ.setdefault(LOOPBACK_ENV, "0")
        try:
            import ray
        except ImportError:
            raise ImportError("executor 'ray': the ray package is not installed; pip install 'mocap[ray]' "
                              "(or use --executor local)") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            from mocap.triangulation.backend import BACKEND_ENV, resolve_backend

            # workers triangulate with the driver's backend, so a chunk's points equal the local run's bit for bit
            env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [_package_root(), os.environ.get("PYTHONPATH")])),
                                BACKEND_ENV: resolve_backend()}}
            if address is None:
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                         runtime_env=env, configure_logging=False, _node_ip_address="127.0.0.1")
            else:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, runtime_env=env,
                         configure_logging=False)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.window = window or 2 * self.workers
        self._remote = {}
        log.info("ray: %d CPUs in the cluster, %d tasks in flight at most", self.workers, self.window)

    def _task(self, fn):
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(num_cpus=1)(fn)
        return self._remote[fn]

    def map(self, fn, items):
        remote, pending = self._task(fn), deque()
        for key, args in items:
            pending.append((key, remote.remote(*args)))
            if len(pending) >= self.window:
                key0, ref = pending.popleft()
                yield key0, self.ray.get(ref)
        while pending:
            key0, ref = pending.popleft()
            yield key0, self.ray.get(ref)

    def map_unordered(self, fn, items):
        remote, pending = self._task(fn), {}
        items = iter(items)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < self.window:
                try:
                    key, args = next(items)
                except StopIteration:
                    exhausted = True
                    break
                pending[remote.remote(*args)] = key
            if pending:
                done, _ = self.ray.wait(list(pending), num_returns=1)
                yield pending.pop(done[0]), self.ray.get(done[0])

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
            self.started = False


def _package_root() -> str:
    import mocap

    return os.path.dirname(os.path.dirname(os.path.abspath(mocap.__file__)))


def make_executor(name: str = "local", address: str | None = None, num_cpus: int | None = None) -> Executor:
    """``local`` or ``ray`` (``address``: a cluster's, None for a local runtime)."""
    if name not in EXECUTORS:
        raise ValueError(f"executor: expected one of {', '.join(EXECUTORS)}, got {name!r}")
    if name == "local":
        if address:
            raise ValueError("--address: only with --executor ray")
        return LocalExecutor()
    return RayExecutor(address, num_cpus)
