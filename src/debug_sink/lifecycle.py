"""Start and close as an async context manager, for the components users hold.

``async with component:`` starts it (:meth:`Lifecycle.start`, nothing by default) and closes
it on the way out, whatever happened (:meth:`Lifecycle.close`). Both are idempotent in every
subclass; an exception inside the block is never swallowed.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Lifecycle:
    """Mix-in: ``__aenter__`` = :meth:`start`, ``__aexit__`` = :meth:`close`."""

    async def start(self) -> None:
        """Connect or spawn what the component needs (nothing by default)."""

    async def close(self) -> None:
        """Release what the component holds."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
