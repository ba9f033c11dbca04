"""What keeps one client from holding the server, below the routes: a deadline for a request's head, and the log
filter that keeps a disconnected slow reader out of stderr.

The routes bound the rest (server.py): a body must arrive within --client-timeout (408), a streamed answer's writes
must be taken within it (the client is left), a request may run --request-timeout seconds (its samples end "time"),
and at most --max-queue requests wait for room in the batch (503 beyond). uvicorn answers 503 itself past its
connection limit (run_server's limit_concurrency).
"""

from __future__ import annotations

import logging


def guarded_protocol(head_seconds: float) -> type:
    """uvicorn's h11 protocol with a deadline for a request's head: a connection that has not sent a whole request line
    and headers within `head_seconds` of connecting, or of its last answer, is closed. uvicorn has no such deadline of
    its own, so one client could hold thousands of connections open by sending a header a minute (slowloris)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Guarded(H11Protocol):
        head_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc) -> None:
            self._stop()
            super().connection_lost(exc)

        def _watch(self) -> None:
            """Time the head while the client has not sent a whole one."""
            if self.conn.their_state is not h11.IDLE:
                self._stop()
            elif self.head_timer is None:
                self.head_timer = self.loop.call_later(head_seconds, self._expire)

        def _expire(self) -> None:
            self.head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def _stop(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

    return Guarded


def quiet_about(kind: type[BaseException]) -> None:
    """Keep uvicorn's "Exception in ASGI application" report of `kind` (a client the server chose to leave) off stderr."""
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: not (record.exc_info and isinstance(record.exc_info[1], kind)))
