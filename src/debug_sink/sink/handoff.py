"""The hand-over between the fetch task and the write task: at most one batch waiting, one
being written.

Owns the queue (capacity one), which batch the writer holds, whether it is idle, and the
bytes of both (they count against ``max_inflight_bytes``). Each batch travels with the
:attr:`~debug_sink.sink.partitions.Assignment.generation` it was built in, so the writer can
drop a batch whose partitions were revoked meanwhile.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from debug_sink.sink.batch import Batch


@dataclass(slots=True)
class HandedOver:
    """A closed batch and the assignment generation it was built in."""

    batch: Batch
    generation: int


class Handoff:
    """One waiting batch at most; ``None`` in the queue tells the writer to end."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[HandedOver | None] = asyncio.Queue(maxsize=1)
        self._queued_bytes = 0
        #: The batch being written, if any.
        self.writing: HandedOver | None = None
        #: Set while no write attempt is in progress.
        self.write_idle = asyncio.Event()
        self.write_idle.set()

    @property
    def writer_idle(self) -> bool:
        """No batch being written and none waiting."""
        return self.writing is None and self._queue.empty()

    @property
    def empty(self) -> bool:
        return self._queue.empty()

    @property
    def size_bytes(self) -> int:
        """Bytes of the waiting batch and the one being written."""
        writing = self.writing.batch.size_bytes if self.writing else 0
        return self._queued_bytes + writing

    def offer(self, batch: Batch, generation: int) -> None:
        """Hand ``batch`` over now (the caller checked that the writer is idle)."""
        self._queued_bytes += batch.size_bytes
        self._queue.put_nowait(HandedOver(batch, generation))

    async def put(self, batch: Batch, generation: int) -> None:
        """Hand ``batch`` over, waiting for room."""
        self._queued_bytes += batch.size_bytes
        await self._queue.put(HandedOver(batch, generation))

    async def finish(self) -> None:
        """Tell the writer there is nothing more (after what is queued)."""
        await self._queue.put(None)

    async def take(self) -> HandedOver | None:
        """The next batch to write (now being written), or None: the end."""
        handed = await self._queue.get()
        if handed is not None:
            self._queued_bytes -= handed.batch.size_bytes
            self.writing = handed
            self.write_idle.clear()
        return handed

    def written(self) -> None:
        """The batch being written is done (committed or abandoned)."""
        self.writing = None
        self.write_idle.set()

    def drop_waiting(self) -> int:
        """Forget the waiting batch (its partitions were revoked); returns its events."""
        dropped = 0
        while not self._queue.empty():
            handed = self._queue.get_nowait()
            if handed is not None:
                dropped += len(handed.batch)
                self._queued_bytes -= handed.batch.size_bytes
        return dropped
