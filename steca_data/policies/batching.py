"""Continuous batching for batch policies: requests arrive one by one, the policy sees batches.

A batch backend (local transformers, the random floor, an HTTP client that fans out) is fastest on many
prompts at once, but under continuous scheduling requests arrive as episodes' environment steps return.
``BatchingPolicy`` runs the policy on a worker thread: it takes every request waiting at that moment (up to
``max_batch``), generates, resolves their futures, and goes again. No request waits for a batch to fill,
and requests that arrive during a generation form the next batch.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from steca_data.policies.base import Policy, PolicyRequest, RequestsRejected, SamplingParams

_STOP = object()


class BatchingPolicy:
    def __init__(self, policy: Policy, max_batch: int = 256):
        self.policy = policy
        self.policy_id = policy.policy_id
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="policy-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: PolicyRequest, params: SamplingParams) -> Future:
        future: Future = Future()
        self._queue.put((request, params, future))
        return future

    def generate(self, requests: list[PolicyRequest], params: SamplingParams) -> list[str]:
        return [f.result() for f in [self.submit(r, params) for r in requests]]

    def _take(self) -> list | None:
        """Block for one request, then take what else is already waiting (one batch, one params value)."""
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP or item[1] != first[1]:
                self._queue.put(item)  # a different params value (or the stop) goes in a later batch
                break
            batch.append(item)
        return batch

    def _serve(self) -> None:
        while (batch := self._take()) is not None:
            self._serve_batch(batch)

    def _serve_batch(self, batch: list) -> None:
        while batch:
            try:
                replies = self.policy.generate([r for r, _, _ in batch], batch[0][1])
                if len(replies) != len(batch):
                    raise RuntimeError(f"policy {self.policy_id} returned {len(replies)} replies for {len(batch)}")
            except RequestsRejected as exc:  # those requests fail alone; the rest are asked again
                for index, error in exc.errors.items():
                    batch[index][2].set_exception(error)
                batch = [item for index, item in enumerate(batch) if index not in exc.errors]
                continue
            except BaseException as exc:  # noqa: BLE001 - the failure belongs to the callers of this batch
                for _, _, future in batch:
                    future.set_exception(exc)
                return
            for (_, _, future), reply in zip(batch, replies, strict=True):
                future.set_result(reply)
            return

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
