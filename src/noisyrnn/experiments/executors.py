"""Where sweep jobs run: this process or a local process pool (``local``), or a Ray cluster.

Both size their workers the same way: ``threads = cores // workers`` torch threads per
worker unless the caller sets ``threads`` (two processes that each use all cores' threads were measured >10x slower here, from
OpenMP spin-waiting), so the same sweep gives the same numbers on either executor.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os

from ..errors import ConfigError, check_choice
from .worker import execute_job

EXECUTORS = ("local", "ray")


def _init_worker(threads: int, keep_freed_memory: bool = False) -> None:
    """A pool worker's set-up: its torch threads, and the allocator tuning when the caller
    asked for it (``noisyrnn --keep-freed-memory``: it applies to each process it starts)."""
    import torch

    torch.set_num_threads(threads)
    if keep_freed_memory:
        from ..runtime import keep_freed_memory as tune_allocator

        tune_allocator()


def threads_per_worker(workers: int, cores: int | None = None, threads: int | None = None) -> int:
    """``threads`` if the caller sets it, else cores // workers (at least 1)."""
    if threads is not None:
        if int(threads) < 1:
            raise ConfigError(f"--threads must be >= 1, got {threads}")
        return int(threads)
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


class LocalExecutor:
    """``workers`` processes on this machine (1: run in this process)."""

    def __init__(self, workers: int = 1, threads: int | None = None, keep_freed_memory: bool = False) -> None:
        if int(workers) < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self.threads = threads_per_worker(self.workers, threads=threads)
        self.keep_freed_memory = bool(keep_freed_memory)

    def run(self, jobs):
        for job in jobs:
            job["threads"] = self.threads
        if self.workers == 1:
            for job in jobs:
                yield job, execute_job(job)
            return
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                    initargs=(self.threads, self.keep_freed_memory)) as pool:
            futures = {pool.submit(execute_job, job): job for job in jobs}
            for fut in cf.as_completed(futures):
                yield futures[fut], fut.result()


class RayExecutor:
    """Jobs as Ray tasks: on the cluster at ``address``, or on a local Ray instance that
    this executor starts and stops itself."""

    def __init__(self, workers: int = 1, address: str | None = None, threads: int | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("the ray executor needs Ray: pip install 'noisyrnn[ray]'") from None
        self.workers, self.address = int(workers), address
        self.threads = threads_per_worker(self.workers, threads=threads)

    def run(self, jobs):
        import ray

        started = not ray.is_initialized()
        if started:
            kwargs = {"address": self.address} if self.address else {
                "num_cpus": os.cpu_count(), "include_dashboard": False}
            ray.init(log_to_driver=False, ignore_reinit_error=True, **kwargs)
        try:
            remote = ray.remote(num_cpus=self.threads)(execute_job)
            pending = {}
            for job in jobs:
                job["threads"] = self.threads
                pending[remote.remote(job)] = job
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), ray.get(ref)
        finally:
            if started:
                ray.shutdown()


def make_executor(name: str, workers: int = 1, address: str | None = None, threads: int | None = None,
                  keep_freed_memory: bool = False):
    """``threads``: torch threads per worker (default cores // workers); ``keep_freed_memory``:
    tune the allocator of each local worker process too (the caller's own process is tuned by
    the command line)."""
    check_choice(name, set(EXECUTORS), "executor")
    if name == "local":
        return LocalExecutor(workers, threads, keep_freed_memory)
    return RayExecutor(workers, address, threads)
