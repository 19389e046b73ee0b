"""Where sweep tasks run: in this process, in a pool of local processes, or on Dask.

Every executor offers the same three things: `submit(fn, *args)` returns a future,
`wait_any(futures)` returns those that have finished (at least one), and `close()`.
`slots` says how many tasks to keep in flight, so that memory stays bounded however
many tasks a sweep has. Results never depend on the executor: each task carries its
compiled model and its own place in the random streams.

Dask (`dask[distributed]`, the optional `dask` extra) is imported only when asked for.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from sim.loader import Problem, ScenarioError


class SerialExecutor:
    """Runs each task at once, in this process (`--workers 1`)."""

    slots = 1
    description = "this process (1 worker)"

    def submit(self, fn, *args) -> Future:
        """Run `fn(*args)` now; return a finished future holding its result or exception."""
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # the runner reports and retries failed tasks
            future.set_exception(exc)
        return future

    def wait_any(self, futures) -> set:
        """Return the finished futures (all of them: they finish on submission)."""
        return set(futures)

    def cancel(self, futures) -> None:
        """Nothing runs in the background."""

    def close(self) -> None:
        """Nothing to release."""


def _start_worker(parent: int) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what to do, so a worker
    # neither dies mid-task nor prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker holds its own end of the task queue, so it would outlive a parent killed
    # by SIGKILL or the out-of-memory killer; it watches the parent and leaves with it.
    if os.name == "posix":
        threading.Thread(target=_leave_with, args=(parent,), daemon=True).start()


def _leave_with(parent: int) -> None:
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            continue


_PRELOAD = ["sim.quiet_interrupts", "sim.app.sweep.worker", "analysis.summary"]  # imported once, in the fork server


def _pool_context():
    """The fork server's context, its modules to preload set; spawn where there is none."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def start_fork_server(workers: int | None = None, scheduler: str | None = None, dask_local: bool = False) -> None:
    """Start the local pool's fork server now if the command line asks for a local pool of 2 or
    more workers (arguments as `make_executor`), so that it imports the workers' modules
    (about 0.6 s) while this process plans the sweep; otherwise do nothing."""
    if scheduler or dask_local or worker_count(workers) == 1:
        return
    if _pool_context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()


class LocalPool:
    """A pool of `workers` local processes (the default executor).

    Workers start from a fork server (spawn where there is none), not by forking the
    parent with its threads. A worker that dies (killed, out of memory) breaks the pool;
    the next submission starts a fresh one, and the runner retries the tasks it held.
    Workers leave within a second or so when this process dies.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self.slots = 2 * workers
        self.description = f"local process pool ({workers} workers)"
        self._context = _pool_context()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context,
                                   initializer=_start_worker, initargs=(os.getpid(),))

    def submit(self, fn, *args) -> Future:
        """Queue `fn(*args)` on the pool; return its future."""
        try:
            return self._pool.submit(fn, *args)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(fn, *args)

    def wait_any(self, futures) -> set:
        """Block until at least one of `futures` has finished; return the finished ones."""
        return wait(futures, return_when=FIRST_COMPLETED).done

    def cancel(self, futures) -> None:
        """Drop queued tasks; tasks already running finish and are discarded."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Tasks on a Dask `distributed` cluster: a scheduler's address, or a local cluster.

    Workers must have adpath installed (they import `sim.app.sweep.worker`). Results come
    back to this process, which writes them; workers need no shared file system.
    """

    def __init__(self, client, cluster=None):
        self.client = client
        self.cluster = cluster
        threads = sum(client.nthreads().values()) or 1
        self.slots = 2 * threads
        self.description = f"Dask at {client.scheduler.address} ({threads} threads)"

    @classmethod
    def connect(cls, address: str, security=None) -> DaskExecutor:
        """Connect to the Dask scheduler at `address` (e.g. tcp://host:8786 or tls://host:8786).

        `security` is a `distributed.security.Security` (see `dask_security`) for TLS.
        """
        distributed = _import_distributed()
        try:
            client = distributed.Client(address, timeout="20s", security=security)
        except (OSError, TimeoutError) as exc:
            raise ScenarioError([Problem("--scheduler", address, f"cannot reach the Dask scheduler: {exc}")]) from None
        return cls(client)

    @classmethod
    def local(cls, workers: int, processes: bool = True) -> DaskExecutor:
        """Start a Dask `LocalCluster` of `workers` single-threaded workers and connect to it."""
        distributed = _import_distributed()
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                           dashboard_address=None)
        return cls(distributed.Client(cluster), cluster)

    def submit(self, fn, *args):
        """Send `fn(*args)` to the cluster; return its Dask future."""
        return self.client.submit(fn, *args, pure=False)

    def wait_any(self, futures) -> set:
        """Block until at least one of `futures` has finished; return the finished ones."""
        from distributed import wait as dask_wait

        return set(dask_wait(list(futures), return_when="FIRST_COMPLETED").done)

    def cancel(self, futures) -> None:
        """Cancel `futures` on the cluster."""
        if futures:
            self.client.cancel(list(futures))

    def close(self) -> None:
        """Disconnect; stop the local cluster if this executor started it."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ScenarioError([Problem(
            "--scheduler/--dask", "",
            "Dask is not installed; install it with: pip install 'adpath[dask]' (or omit --scheduler/--dask "
            "to use local processes)")]) from None
    return distributed


def dask_security(tls: dict[str, str | None] | None):
    """Return Dask's `Security` for TLS from `{ca_file, cert, key}` paths, or None if none given.

    The certificate and key are this client's; the CA file checks the scheduler's. Encryption
    is then required. Raises `ScenarioError` if only some of the three are given.
    """
    given = {name: path for name, path in (tls or {}).items() if path}
    if not given:
        return None
    missing = [f"--tls-{name.replace('_', '-')}" for name in ("ca_file", "cert", "key") if name not in given]
    if missing:
        raise ScenarioError([Problem("command line", missing[0], "TLS needs --tls-ca-file, --tls-cert and "
                                     f"--tls-key together; missing: {', '.join(missing)}")])
    return _import_distributed().security.Security(
        tls_ca_file=given["ca_file"], tls_client_cert=given["cert"], tls_client_key=given["key"],
        require_encryption=True)


def make_executor(workers: int | None = None, scheduler: str | None = None, dask_local: bool = False,
                  tls: dict[str, str | None] | None = None):
    """Return the executor the command line asks for.

    `scheduler`: a Dask scheduler's address, with `tls` paths (`dask_security`) for a TLS
    cluster; `dask_local`: a Dask LocalCluster of `workers`; otherwise local processes
    (`workers`, default all cores; 1 runs in this process).
    """
    if scheduler and dask_local:
        raise ScenarioError([Problem("command line", "--scheduler",
                                     "give either --scheduler or --dask local, not both")])
    if any((tls or {}).values()) and not scheduler:
        raise ScenarioError([Problem("command line", "--tls-ca-file",
                                     "the TLS options are for a remote cluster: add --scheduler tls://host:port")])
    count = worker_count(workers)
    if scheduler:
        return DaskExecutor.connect(scheduler, dask_security(tls))
    if dask_local:
        return DaskExecutor.local(count)
    return SerialExecutor() if count == 1 else LocalPool(count)


def worker_count(workers: int | None) -> int:
    """The number of workers asked for, all cores by default."""
    return workers or os.cpu_count() or 1
