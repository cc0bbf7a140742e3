"""A loopback TCP forwarder whose link can be cut and restored: a real network outage.

Clients (psycopg2 here) connect to the proxy's port; while ``cut()`` is in effect every
open connection is closed and new ones are refused, exactly as a database that went
away looks to the client. While ``blackhole()`` is in effect every open connection is
closed and new ones are accepted but never answered, as a host that silently drops
packets looks to a client in the middle of its handshake. ``restore()`` brings the
link back.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class TcpProxy:
    """Forward 127.0.0.1:<port> to ``target``; ``cut()`` / ``restore()`` the link."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._swallowed: list[socket.socket] = []  # accepted in black-hole mode, never read
        self._blackhole = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopped.clear()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._blackhole:
                    self._swallowed.append(client)
                    continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._blackhole:  # switched while we connected upstream
                    self._swallowed.append(client)
                    upstream.close()
                    continue
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        try:
            while True:
                for key, _ in selector.select(timeout=0.5):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                if self._stopped.is_set():
                    return
        except OSError:
            return
        finally:
            selector.close()
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        """Refuse new connections and kill the open ones (the database is 'gone')."""
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._kill_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def blackhole(self) -> None:
        """Kill the open connections; accept new ones but never answer (the peer 'hangs')."""
        with self._lock:
            self._blackhole = True
        self._kill_open_connections(swallowed=False)

    def restore(self) -> None:
        """Forward again: listen on the same port again, or leave black-hole mode."""
        with self._lock:
            self._blackhole = False
        self._kill_open_connections(pairs=False)  # hung clients see the link drop now
        if self._listener is None:
            self.start()

    def hung_clients(self) -> set[int]:
        """The black-holed connections whose client is still waiting (not yet given up).

        Identified by ``id()`` of the proxy's socket, so a caller can tell that one
        particular hung connection was still open at two moments.
        """
        with self._lock:
            swallowed = list(self._swallowed)
        waiting: set[int] = set()
        for sock in swallowed:
            try:
                while sock.recv(65536, socket.MSG_DONTWAIT):
                    pass  # what the client sent: nobody will ever answer it
            except BlockingIOError:
                waiting.add(id(sock))  # open, nothing more to read: the client waits
            except OSError:
                continue  # reset or closed here: not waiting
        return waiting

    def _kill_open_connections(self, *, pairs: bool = True, swallowed: bool = True) -> None:
        with self._lock:
            victims: list[socket.socket] = []
            if pairs:
                victims.extend(sock for pair in self._pairs for sock in pair)
                self._pairs = []
            if swallowed:
                victims.extend(self._swallowed)
                self._swallowed = []
        for sock in victims:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self.cut()
