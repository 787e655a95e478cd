"""Dynamic scheduler of the CPU engine's tasks: dependency counters, a ready queue, no barriers.

A task is (block b, chunk q) in sweep order (``q = 0`` is the first chunk the sweep runs: the
first in time for the forward, the last for the adjoint). Task (b, q) waits for (b, q − 1) and
for (a, q) of every predecessor block a of b (upstream blocks in the forward, downstream blocks
in the adjoint). Workers are Python threads that pop the ready task with the smallest
(q, rank of b) and run it; the task functions are compiled with ``nogil=True``, so the threads
run them in parallel and the interpreter only does the bookkeeping of one task at a time (the
Python loop is over tasks, never over reaches or steps). A worker with nothing ready sleeps on a
condition variable (no spinning); a descheduled worker delays only the tasks that depend on its
own, the others keep taking what is ready.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable

import numpy as np


class _TaskGraph:
    """Dependency counters and the ready heap (the caller holds the lock)."""

    def __init__(  # noqa: PLR0917 (the graph's arrays)
        self, n_blocks: int, n_chunks: int, pred_ptr: np.ndarray, succ_ptr: np.ndarray,
        succ_idx: np.ndarray, reverse: bool,
    ) -> None:  # fmt: skip
        self.n_blocks, self.n_chunks = n_blocks, n_chunks
        n_pred = np.diff(pred_ptr).tolist()
        self.succ = [succ_idx[succ_ptr[b] : succ_ptr[b + 1]].tolist() for b in range(n_blocks)]
        self.rank = [n_blocks - 1 - b if reverse else b for b in range(n_blocks)]
        self.waiting = [[n_pred[b] + (q > 0) for b in range(n_blocks)] for q in range(n_chunks)]
        self.ready = [(0, self.rank[b], b) for b in range(n_blocks) if n_pred[b] == 0]
        heapq.heapify(self.ready)
        self.left = n_blocks * n_chunks

    def pop(self) -> tuple[int, int]:
        """The most urgent ready task (b, q)."""
        q, _, b = heapq.heappop(self.ready)
        return b, q

    def done(self, b: int, q: int) -> int:
        """Mark (b, q) finished; returns how many tasks became ready."""
        self.left -= 1
        freed = [(q, s) for s in self.succ[b]]
        if q + 1 < self.n_chunks:
            freed.append((q + 1, b))
        n_ready = 0
        for qq, bb in freed:
            self.waiting[qq][bb] -= 1
            if self.waiting[qq][bb] == 0:
                heapq.heappush(self.ready, (qq, self.rank[bb], bb))
                n_ready += 1
        return n_ready


def run_tasks(  # noqa: PLR0913, PLR0917 (the graph's arrays)
    run: Callable[[int, int], None], n_blocks: int, n_chunks: int, pred_ptr: np.ndarray,
    succ_ptr: np.ndarray, succ_idx: np.ndarray, threads: int, reverse: bool,
) -> None:  # fmt: skip
    """Run ``run(b, q)`` for every block and chunk in dependency order on ``threads`` threads
    (the calling thread is one of them). ``pred_ptr`` counts the predecessor blocks of each
    block, ``succ_ptr``/``succ_idx`` list its successors; ``reverse``: blocks of higher number
    first among ready tasks of the same chunk (the adjoint). One thread runs the tasks in
    sweep order, no locks."""
    if threads <= 1 or n_blocks <= 1:
        blocks = range(n_blocks - 1, -1, -1) if reverse else range(n_blocks)
        for q in range(n_chunks):
            for b in blocks:
                run(b, q)
        return
    graph = _TaskGraph(n_blocks, n_chunks, pred_ptr, succ_ptr, succ_idx, reverse)
    cond = threading.Condition()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with cond:
                while not graph.ready and graph.left > 0 and not errors:
                    cond.wait()
                if errors or not graph.ready:
                    return
                b, q = graph.pop()
            try:
                run(b, q)
            except BaseException as exc:  # handed to the caller below
                with cond:
                    errors.append(exc)
                    cond.notify_all()
                return
            with cond:
                n_ready = graph.done(b, q)
                if graph.left == 0:
                    cond.notify_all()
                elif n_ready > 1:
                    cond.notify(n_ready - 1)  # this worker takes one itself

    helpers = [threading.Thread(target=worker, daemon=True) for _ in range(threads - 1)]
    for h in helpers:
        h.start()
    worker()
    for h in helpers:
        h.join()
    if errors:
        raise errors[0]
