"""The one contract for "somewhere a message can be told": :class:`Tellable`.

Actor handles, actor refs and test adapters all satisfy it. Callers that only hand
messages on (the event recorder, the broker's API functions, market data subscribers)
type their target with it instead of each declaring the same protocol again.
"""

from __future__ import annotations

from typing import Any, Protocol


class Tellable(Protocol):
    """Anything with ``tell``: an actor handle (by name), an actor ref, a queue adapter."""

    def tell(self, message: Any) -> None: ...
