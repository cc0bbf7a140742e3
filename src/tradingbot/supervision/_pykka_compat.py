"""The one module in ``src/`` that touches pykka's private internals (tested: pykka 4.5).

pykka has no supervision, and its public API cannot give an actor an inbox that can be
closed, run code around each message, keep what a dead actor left in its inbox, or
start an actor's thread after its supervisor wired it. pykka has a private name for
each; this module imports or overrides every one of them, and no other module may
(``tests/supervision/test_pykka_compat.py`` scans ``src/`` for them):

====================================  =======================================================
pykka private                         what supervision uses it for
====================================  =======================================================
``pykka._envelope.Envelope``          the object in every inbox: message and reply future
``pykka.messages._ActorStop``         recognise pykka's stop request among salvaged messages
``Actor._create_actor_inbox``         the closable inbox (:class:`ClosableInbox`)
``Actor._handle_receive``             wrap each message (log context, crash report)
``Actor._actor_loop_teardown``        hand a dead actor's inbox back to its handle
``ThreadingActor._start_actor_loop``  start the thread once the supervisor attached the actor
====================================  =======================================================

It also relies on how pykka's loop (``Actor._actor_loop_running``) uses them: it calls
``_handle_receive`` once per envelope on the actor thread, answers the envelope's
``reply_to`` with the result (or the exception), and stops looping once
``actor_stopped`` is set. :func:`missing_hooks` checks the names and signatures; the
test also checks that behaviour with a real actor. Importing this module with a pykka
that lacks a hook fails at once with an :class:`ImportError` naming it, rather than
letting a supervised actor lose messages later.

Upgrading pykka
---------------
``pyproject.toml`` pins ``pykka~=4.5.0``: the 4.5 series, the one tested. To move on:

1. read pykka's changelog and the diff between the two versions of ``pykka/_actor.py``,
   ``_threading.py``, ``_envelope.py`` and ``messages.py``;
2. install the new version in ``.venv`` and run ``pytest tests/supervision``:
   ``test_pykka_compat.py`` names each hook that moved or changed. Adapt this module
   only (the rest of ``src/`` uses the names below, never pykka's);
3. run ``tests/actors``, ``tests/control``, the supervision e2e tests and
   ``benchmarks/bench_supervision.py`` (compare with ``docs/PERFORMANCE.md``);
4. set the pin to the new series (e.g. ``pykka~=4.6.0``) and :data:`TESTED_SERIES`.
"""

from __future__ import annotations

import inspect
import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka

TESTED_SERIES = "4.5"
"""The pykka minor series this module was written and tested against."""

try:
    import pykka._envelope as _pykka_envelope
    from pykka import messages as _pykka_messages
    from pykka._envelope import Envelope
except ImportError as exc:  # pragma: no cover - only with an unsupported pykka
    raise ImportError(
        f"tradingbot.supervision needs pykka's private module {exc.name or 'pykka._envelope'}, "
        f"which the installed pykka lacks; it is tested with pykka {TESTED_SERIES} "
        f"(see tradingbot/supervision/_pykka_compat.py to upgrade)"
    ) from exc

__all__ = [
    "TESTED_SERIES",
    "ClosableInbox",
    "Envelope",
    "HookedActor",
    "is_stop_request",
    "missing_hooks",
    "start_loop",
]


@dataclass(frozen=True, slots=True)
class Hook:
    """One private name supervision relies on, and the parameters it must take."""

    owner: str  # key in the namespace given to missing_hooks
    name: str
    params: tuple[str, ...] | None  # None: not called, only looked up or instantiated
    static: bool = False

    @property
    def label(self) -> str:
        params = "" if self.params is None else f"({', '.join(self.params)})"
        return f"{self.owner}.{self.name}{params}"


HOOKS: tuple[Hook, ...] = (
    Hook("pykka._envelope", "Envelope", ("message", "reply_to")),
    Hook("pykka.messages", "_ActorStop", None),
    Hook("pykka.ThreadingActor", "_create_actor_inbox", (), static=True),
    Hook("pykka.Actor", "_handle_receive", ("self", "message")),
    Hook("pykka.Actor", "_actor_loop_teardown", ("self",)),
    Hook("pykka.ThreadingActor", "_start_actor_loop", ("self",)),
    Hook("pykka.Actor", "_actor_loop_running", ("self",)),
)
"""Every pykka private this module uses (``_actor_loop_running``: the loop that calls them)."""


def _installed() -> dict[str, Any]:
    return {
        "pykka._envelope": _pykka_envelope,
        "pykka.messages": _pykka_messages,
        "pykka.Actor": pykka.Actor,
        "pykka.ThreadingActor": pykka.ThreadingActor,
    }


def missing_hooks(namespace: Mapping[str, Any] | None = None) -> list[str]:
    """One line per hook that is absent or has other parameters; empty when all fit.

    ``namespace`` maps each :attr:`Hook.owner` to the object holding it (the installed
    pykka by default; the test passes a doctored one to see this check fail).
    """
    owners = _installed() if namespace is None else namespace
    problems: list[str] = []
    for hook in HOOKS:
        owner = owners.get(hook.owner)
        raw = inspect.getattr_static(owner, hook.name, None) if owner is not None else None
        if raw is None:
            problems.append(f"{hook.label} is missing")
            continue
        if hook.static and not isinstance(raw, staticmethod):
            problems.append(f"{hook.label} is no longer a staticmethod")
            continue
        if hook.params is None:
            continue
        try:  # a class's signature is its constructor's, without self
            params = tuple(inspect.signature(getattr(owner, hook.name)).parameters)
        except (TypeError, ValueError):
            problems.append(f"{hook.label} is no longer a function")
            continue
        if params != hook.params:
            problems.append(f"{hook.label} now takes ({', '.join(params)})")
    return problems


_problems = missing_hooks()
if _problems:  # pragma: no cover - only with an unsupported pykka
    raise ImportError(
        "tradingbot.supervision relies on pykka internals the installed pykka changed: "
        + "; ".join(_problems)
        + f". It is tested with pykka {TESTED_SERIES}: install pykka~={TESTED_SERIES}.0 "
        "or adapt tradingbot/supervision/_pykka_compat.py (its docstring says how)"
    )


def is_stop_request(message: object) -> bool:
    """True for the message pykka's ``ActorRef.stop`` puts in the inbox."""
    return isinstance(message, _pykka_messages._ActorStop)


def start_loop(actor: pykka.ThreadingActor) -> None:
    """Start ``actor``'s thread: what ``Actor.start`` does after registering the actor.

    Supervision creates, attaches and registers the actor itself first, so it cannot
    use ``start`` (which also constructs the actor from arguments).
    """
    actor._start_actor_loop()


class ClosableInbox(queue.Queue[Envelope[Any]]):
    """A pykka inbox that can be closed: a message put after that goes to ``forward``.

    A sender checks that the actor is alive and *then* puts (pykka's ``tell`` does the
    same); one that passed the check just before the actor died would otherwise leave
    its message in an inbox nobody reads any more, and it would be lost. Closing and
    draining are one step under the queue's lock, so every message is either drained
    with the inbox or handed to ``forward``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.forward: Callable[[Envelope[Any]], None] | None = None

    def put(self, item: Envelope[Any], block: bool = True, timeout: float | None = None) -> None:
        with self.mutex:
            if not self.closed:
                self._put(item)
                self.unfinished_tasks += 1
                self.not_empty.notify()
                return
        forward = self.forward
        if forward is not None:
            forward(item)  # outside the lock: the handle may put into the replacement

    def close(self) -> list[Envelope[Any]]:
        """Refuse further messages and return the ones still waiting, in order."""
        with self.mutex:
            self.closed = True
            items = list(self.queue)
            self.queue.clear()
            return items


class HookedActor(pykka.ThreadingActor):
    """``pykka.ThreadingActor`` with a :class:`ClosableInbox` and its loop hooks renamed.

    Subclasses override :meth:`_receive_message` and :meth:`_after_loop`; the
    ``_pykka_*`` methods are pykka's own behaviour, for them to fall back on.
    """

    @staticmethod
    def _create_actor_inbox() -> ClosableInbox:
        return ClosableInbox()

    @property
    def _inbox(self) -> ClosableInbox:
        inbox = self.actor_inbox
        assert isinstance(inbox, ClosableInbox)
        return inbox

    def _handle_receive(self, message: Any) -> Any:
        return self._receive_message(message)

    def _actor_loop_teardown(self) -> None:
        self._after_loop()

    def _receive_message(self, message: Any) -> Any:
        """Handle one message (actor thread); its exception goes to the asker or crashes.

        By default pykka's own handling (:meth:`_pykka_receive`).
        """
        return self._pykka_receive(message)

    def _pykka_receive(self, message: Any) -> Any:
        """pykka's handling of a message: its stop request, proxy calls, else ``on_receive``."""
        return super()._handle_receive(message)

    def _after_loop(self) -> None:
        """Run on the actor thread once its loop ended, whatever the reason.

        By default pykka's own clean-up (:meth:`_pykka_after_loop`).
        """
        self._pykka_after_loop()

    def _pykka_after_loop(self) -> None:
        """pykka's clean-up: fail the asks and drop the tells left in the inbox."""
        super()._actor_loop_teardown()
