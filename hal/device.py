"""Base for every device: a context manager with ``close()``."""

from types import TracebackType
from typing import Self


class Device:
    """Closing is idempotent; ``with`` closes on exit."""

    closed: bool = False

    def close(self) -> None:
        """Release the device (subclasses extend ``_close``)."""
        if not self.closed:
            self.closed = True
            self._close()

    def _close(self) -> None:
        """Release backend resources."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
