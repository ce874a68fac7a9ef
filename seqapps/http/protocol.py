"""uvicorn's httptools protocol with one change: a response goes out in one write.

uvicorn writes a response's head and its body with two ``transport.write`` calls, which on
a keep-alive connection are two ``send`` system calls and two wake-ups of the client, who
reads a head without its body first. Here the writes made in one turn of the event loop are
joined and sent once at the end of that turn: the head and a body sent right after it (all
that :mod:`seqapps.http.app` answers with) leave together: half the sends under load.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class JoinedWrites:
    """A transport whose writes in one loop turn are sent as one; everything else is the
    transport's own. Closing sends what is pending first."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport, self._loop, self._pending = transport, loop, []

    def write(self, data) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name):
        return getattr(self._transport, name)


class JoinedWritesProtocol(HttpToolsProtocol):
    """``uvicorn.run(app, http=JoinedWritesProtocol)``: httptools parsing, one write a response."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWrites(transport, self.loop))
