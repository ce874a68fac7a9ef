"""Request batching, as TF Serving's ``--enable_batching``: concurrent requests, one call.

Requests for the same signature of the same model version queue up; the first one waits at
most ``timeout`` seconds for others to join, up to ``max_batch_size`` rows, then they run as
one call and each gets its own rows back. Up to ``concurrent`` calls of one signature run at
once (one per model thread), so the next batch is read, checked and gathered while the last one
runs, and a batch starts when a thread is free to run it. Unlike
TF Serving, a batch waits only while the server is still reading other requests
(:attr:`Batching.arriving`): a lone client is never kept waiting for company that is not coming.

A signature is batched only when that cannot change anyone's answer's shape: every input and
output has the batch first and fixed sizes after it (a ``[batch, time]`` output would be
padded to the longest row of the batch), and scalar inputs (``beam_width``...) are part of
the queue's key, so only requests that agree on them share a call. A signature with a
``seed`` input samples: its draws depend on the batch, so it is never batched.

A batch also stays within the export's bounds (:mod:`.costs`: rows, text bytes, rows x the
longest text, image bytes): a request that would take it over them starts the next batch, so
merging never makes a call the graph refuses, nor one that costs more than the bounds allow.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import numpy as np

from seqapps.http import costs


def can_batch(inputs: dict, outputs: dict) -> bool:
    if "seed" in inputs:
        return False

    def batched(spec, scalar_ok):
        dims = spec.shape.as_list() if spec.shape.rank is not None else None
        if dims == [] and scalar_ok:
            return True
        return bool(dims) and dims[0] is None and all(d is not None for d in dims[1:])

    return any(s.shape.rank for s in inputs.values()) and \
        all(batched(s, True) for s in inputs.values()) and all(batched(s, False) for s in outputs.values())


@dataclass
class _Lane:
    queue: asyncio.Queue
    busy: int = 0  # requests of this lane queued or running


@dataclass
class _Item:
    arrays: dict
    rows: int
    future: asyncio.Future
    cost: costs.Cost | None = None
    limits: dict | None = None  # the bounds its batch must stay within (None: rows only)


class Batching:
    """Runs signature calls in ``executor``, gathering them into batches when ``enabled``."""

    def __init__(self, executor, enabled: bool = True, max_batch_size: int = 64, timeout_ms: float = 2.0,
                 concurrent: int = 1):
        self.executor = executor
        self.concurrent = max(1, concurrent)  # calls of one signature running at once
        self.enabled = enabled
        self.max_batch_size = max(1, max_batch_size)
        self.timeout = max(0.0, timeout_ms) / 1000.0
        self.requests, self.calls = Counter(), Counter()  # by (model, signature): what was asked, what ran
        self.arriving = 0  # predict requests being read and checked, not yet handed to call()

    async def call(self, model, sig, arrays: dict, rows: int, cost: costs.Cost | None = None,
                   limits: dict | None = None) -> dict:
        loop = asyncio.get_running_loop()
        self.requests[model.name, sig.name] += 1
        if not (self.enabled and sig.batchable) or rows >= self.max_batch_size:
            return await self._direct(model, sig, arrays)
        key = (sig.name, tuple((k, a.item()) for k, a in sorted(arrays.items()) if a.ndim == 0))
        lane = model.batchers.get(key)
        if lane is None:
            lane = model.batchers[key] = _Lane(asyncio.Queue())
            loop.create_task(self._gather(model, key, sig, lane))
        lane.busy += 1
        try:
            if lane.busy == 1 and not self.arriving:  # nobody to share a call with: no queue, no wait
                return await self._direct(model, sig, arrays)
            item = _Item(arrays, rows, loop.create_future(), cost, limits)
            lane.queue.put_nowait(item)
            return await item.future
        finally:
            lane.busy -= 1

    async def _direct(self, model, sig, arrays: dict) -> dict:
        self.calls[model.name, sig.name] += 1
        return await asyncio.get_running_loop().run_in_executor(self.executor, sig, arrays)

    async def _gather(self, model, key, sig, lane: _Lane) -> None:
        """Forms and runs batches from ``queue``, up to ``concurrent`` at once: a batch is formed
        when a thread is free to run it, so requests that arrive meanwhile join it. After 10 s
        idle it ends (so a replaced model's queues do not keep it loaded) and the next request
        starts a new one."""
        loop = asyncio.get_running_loop()
        queue, waiting, free = lane.queue, None, asyncio.Semaphore(self.concurrent)
        running = set()  # the batches' tasks, held until done
        while True:
            if waiting is None:
                try:
                    waiting = await asyncio.wait_for(queue.get(), 10.0)
                except asyncio.TimeoutError:
                    if queue.empty() and not lane.busy:  # no await between this check and the removal
                        model.batchers.pop(key, None)
                        return
                    continue
            await free.acquire()
            batch = [waiting]
            waiting = None
            rows, deadline = batch[0].rows, loop.time() + self.timeout
            cost = batch[0].cost
            while rows < self.max_batch_size:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0 or not self.arriving:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                merged = cost + item.cost if cost is not None and item.cost is not None else None
                if rows + item.rows > self.max_batch_size or \
                        (merged is not None and item.limits is not None and costs.over(merged, item.limits, merged=True)):
                    waiting = item  # starts the next batch
                    break
                batch.append(item)
                rows, cost = rows + item.rows, merged
            task = loop.create_task(self._run(model, sig, batch))
            running.add(task)
            task.add_done_callback(lambda t: (running.discard(t), free.release()))

    async def _run(self, model, sig, batch: list) -> None:
        loop = asyncio.get_running_loop()
        live = [item for item in batch if not item.future.done()]  # a client that left is not waited for
        if not live:
            return
        try:
            if len(live) == 1:
                self.calls[model.name, sig.name] += 1
                outputs = [await loop.run_in_executor(self.executor, sig, live[0].arrays)]
            else:
                merged = {k: a if a.ndim == 0 else np.concatenate([i.arrays[k] for i in live])
                          for k, a in live[0].arrays.items()}
                self.calls[model.name, sig.name] += 1
                together = await loop.run_in_executor(self.executor, sig, merged)
                outputs = split(together, [i.rows for i in live])
        except Exception as e:
            if len(live) == 1:
                _fail(live[0], e)
                return
            for item in live:  # one request's bad input must not fail the others: each runs alone
                self.calls[model.name, sig.name] += 1
                try:
                    _finish(item, await loop.run_in_executor(self.executor, sig, item.arrays))
                except Exception as e:
                    _fail(item, e)
            return
        for item, out in zip(live, outputs):
            _finish(item, out)


    def prometheus(self) -> str:
        """The counters in Prometheus' text format (TF Serving serves its own at the same path)."""
        lines = []
        for metric, counts, what in (("seqapps_requests_total", self.requests, "predict requests answered"),
                                     ("seqapps_model_calls_total", self.calls, "signature calls run (batched or not)")):
            lines += [f"# HELP {metric} {what}", f"# TYPE {metric} counter"]
            lines += [f'{metric}{{model="{m}",signature="{s}"}} {n}' for (m, s), n in sorted(counts.items())]
        return "\n".join(lines) + "\n"


def split(outputs: dict, sizes: list[int]) -> list[dict]:
    """One call's outputs -> each request's rows, in order."""
    edges = np.cumsum([0, *sizes])
    return [{k: v[a:b] for k, v in outputs.items()} for a, b in zip(edges[:-1], edges[1:])]


def _finish(item: _Item, outputs: dict) -> None:
    if not item.future.done():
        item.future.set_result(outputs)


def _fail(item: _Item, error: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(error)
