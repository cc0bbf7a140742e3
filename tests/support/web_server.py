"""A harness for the web tests: the real aiohttp app served on a loopback port.

``LoopThread`` runs an event loop in a daemon thread, as the process's main loop would;
``Server`` starts an app from ``tradingbot.web.create_app`` on 127.0.0.1 with an
OS-chosen port and answers ``Reply`` objects, through urllib (``request``) or an aiohttp
client session (``get``, ``fetch``, ``upgrade``, ``session``); ``web_config`` builds the
configuration of a runtime whose home is a temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
from aiohttp import web
from yarl import URL

from tradingbot.config import Config, load_config

T = TypeVar("T")
STREAM_PATH = "/api/events/stream"


class LoopThread:
    """An event loop in a daemon thread, as the process's main loop would be."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=self.timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: status, headers and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def media_type(self) -> str:
        """The Content-Type without its parameters (``""`` when absent)."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip()

    @property
    def content_type(self) -> str:
        """The media type, as aiohttp's ``ClientResponse.content_type`` names it."""
        return self.media_type

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode()


class Server:
    """An app on 127.0.0.1 with an OS-chosen port, and an aiohttp client session for it.

    ``token``, when given, is sent as a bearer token by ``request`` (unless ``auth=False``);
    the aiohttp methods send an ``Authorization`` header only when given one.
    """

    def __init__(self, loop: LoopThread, app: web.Application, token: str | None = None) -> None:
        self.loop = loop
        self.app = app
        self.token = token
        self._runner = web.AppRunner(app, access_log=None)
        self.port, self.session = loop.run(self._start())

    async def _start(self) -> tuple[int, aiohttp.ClientSession]:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1]), aiohttp.ClientSession()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, path: str, method: str = "GET", *, auth: bool = True) -> Reply:
        """A blocking urllib request, with the bearer token unless ``auth`` is false."""
        request = urllib.request.Request(self.url(path), method=method)
        if auth and self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, dict(error.headers), error.read())

    async def fetch(
        self,
        path: str,
        params: Any = None,
        *,
        authorization: str | None = None,
        encoded: bool = False,
    ) -> Reply:
        """A GET through the session; ``encoded`` sends the path's query as it is written."""
        url: Any = self.url(path)
        if encoded:
            url = URL(url, encoded=True)
        headers = {} if authorization is None else {"Authorization": authorization}
        async with self.session.get(url, params=params, headers=headers) as response:
            return Reply(response.status, response.headers, await response.read())

    def get(
        self,
        path: str,
        params: Any = None,
        *,
        authorization: str | None = None,
        encoded: bool = False,
    ) -> Reply:
        return self.loop.run(self.fetch(path, params, authorization=authorization, encoded=encoded))

    async def _upgrade(self, authorization: str | None, path: str) -> int:
        headers = {} if authorization is None else {"Authorization": authorization}
        try:
            async with self.session.ws_connect(self.url(path), headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status

    def upgrade(self, authorization: str | None = None, *, path: str = STREAM_PATH) -> int:
        """The status of a WebSocket upgrade of the stream (101 when accepted)."""
        return self.loop.run(self._upgrade(authorization, path))

    async def stop(self) -> None:
        await self.session.close()
        await self._runner.cleanup()

    def close(self) -> None:
        self.loop.run(self.stop())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def web_config(
    tmp: Path,
    settings: Mapping[str, str] | None = None,
    *,
    token: str | None = None,
    database_url: str | None = None,
) -> Config:
    """A configuration homed in ``tmp``, plus ``settings`` (``TRADINGBOT_*`` variables)."""
    env_file = tmp / "empty.env"  # so that a ./.env in the working directory is not read
    env_file.write_text("")
    environ = {
        "TRADINGBOT_HOME": str(tmp / "home"),
        "TRADINGBOT_ENV_FILE": str(env_file),
        "TRADINGBOT_STRATEGIES": "",  # no example strategy trading under the test
        **(settings or {}),
    }
    if token is not None:
        environ["TRADINGBOT_API_TOKEN"] = token
    if database_url is not None:
        environ["TRADINGBOT_DATABASE_URL"] = database_url
    return load_config(environ=environ)
