"""Request limits: body size (413), content type (415) and load (503), before a route reads
anything."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse (413) a body above ``max_bytes``, declared or streamed (chunked).

    A declared Content-Length above the bound is refused before reading; a body sent without
    one is counted as it arrives and refused once it passes the bound.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def refuse() -> JSONResponse:
            return JSONResponse(
                {"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413
            )

        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await refuse()(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await refuse()(scope, receive, send)


class JsonOnly:
    """ASGI middleware: refuse (415) a body that is not declared ``application/json``.

    A browser page can send ``text/plain`` or form posts to any address without a CORS
    preflight; refusing them keeps other sites from writing into the prediction log.
    """

    def __init__(self, app: Any, paths: tuple[str, ...]) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths:
            declared = dict(scope.get("headers") or []).get(b"content-type", b"")
            media = declared.split(b";")[0].strip().lower()
            if media != b"application/json" and not media.endswith(b"+json"):
                reply = JSONResponse(
                    {"detail": "send the body as JSON with Content-Type: application/json"},
                    status_code=415,
                )
                await reply(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Overload:
    """ASGI middleware: at most ``max_inflight`` requests to ``paths`` at once in this worker,
    and none while the prediction log is more than ``max_lag_s`` behind (``lag`` reads it).

    One more is answered 503 with ``Retry-After`` at once, so an overloaded server sheds
    load (a client or a load balancer retries elsewhere) instead of queueing without bound
    and answering everything late, or answering predictions faster than it can keep them.
    Between half the bound and the bound, a new request first waits (up to ``wait_s``,
    counted in flight) for the log to catch up: clients that send as fast as they are
    answered then slow to the pace the log keeps, rather than being refused and sending
    the same body again (a refused batch of 1,000 still costs its 400 kB on the wire).
    """

    def __init__(
        self,
        app: Any,
        max_inflight: int,
        paths: tuple[str, ...],
        lag: Callable[[], float] | None = None,
        max_lag_s: float = math.inf,
        wait_s: float = 0.5,
    ) -> None:
        self.app, self.max_inflight, self.paths = app, max_inflight, paths
        self.lag, self.max_lag_s, self.wait_s = lag, max_lag_s, wait_s
        self.inflight = 0

    async def _busy(self) -> str | None:
        if self.inflight >= self.max_inflight:
            return f"busy: {self.inflight} requests in flight; retry shortly"
        if self.lag is None:
            return None
        behind = self.lag()
        if behind > self.max_lag_s / 2:
            self.inflight += 1  # waiting counts in flight: the wait is bounded too
            try:
                deadline = time.monotonic() + self.wait_s
                while self.max_lag_s / 2 < behind <= self.max_lag_s:
                    if time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(0.005)
                    behind = self.lag()
            finally:
                self.inflight -= 1
        if math.isinf(behind):
            return (
                "the prediction log cannot write (the database unreachable, or a full disk): "
                "no prediction is answered that could not be kept; retry later"
            )
        if behind > self.max_lag_s:
            return f"busy: the prediction log is {behind:.1f} s behind; retry shortly"
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        reason = await self._busy()
        if reason is not None:
            reply = JSONResponse({"detail": reason}, status_code=503, headers={"Retry-After": "1"})
            await reply(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
