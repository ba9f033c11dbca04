"""Where `charrnn serve` listens and whom it serves (ServeConfig)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError
from ..settings import setting


@dataclass(frozen=True)
class ServeConfig:
    """Where `charrnn serve` listens and whom it serves; validate() raises UsageError for values that make no sense."""

    host: str = setting("127.0.0.1", "Address to listen on (0.0.0.0: every interface, open to the network).")
    port: int = setting(8000, "Port to listen on (0: any free one, printed).")
    max_batch: int = setting(256, "Samples generated together; requests beyond it wait their turn.")
    allow_origin: tuple[str, ...] = setting((), "Let web pages from ORIGIN call the API from a browser (CORS), such as "
                                            "http://localhost:3000; repeatable; '*' for any page.", flags=("--allow-origin",),
                                            cli_type=list[str], parse=tuple)
    request_timeout: float = setting(300.0, "Seconds a request may take from its arrival: samples still running then end "
                                     "there (ended: time), and one still waiting for room in the batch is refused (503).")
    client_timeout: float = setting(10.0, "Seconds a client may take to send a request's headers or its body, or to take "
                                    "one write of a streamed answer; then it is disconnected (408 where an answer can "
                                    "still be sent).")
    max_queue: int = setting(1024, "Requests that may wait for room in the batch; beyond them, new ones are refused "
                             "(503, with Retry-After).")

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port must be from 0 to 65535, got {self.port}")
        if self.max_batch < 1:
            raise UsageError(f"--max-batch must be at least 1, got {self.max_batch}")
        for flag, value in (("--request-timeout", self.request_timeout), ("--client-timeout", self.client_timeout)):
            if not 0 < value < 10**6:
                raise UsageError(f"{flag} must be a number of seconds above 0, got {value:g}")
        if self.max_queue < 0:
            raise UsageError(f"--max-queue must be 0 or more, got {self.max_queue}")
        bad = [o for o in self.allow_origin if o != "*" and not re.fullmatch(r"https?://[^/\s]+", o)]
        if bad:
            raise UsageError(f"--allow-origin {bad[0]!r} is not an origin; give scheme and host, such as "
                             "http://localhost:3000 (no path), or '*'")
