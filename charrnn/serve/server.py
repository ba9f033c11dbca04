"""charrnn serve: the HTTP server (Starlette routes on uvicorn) around the engine and the API records.

Routes: GET / (the co-writing page, web/index.html, no external assets), GET /v1/info, POST /v1/sample
(streamed as JSON lines, or server-sent events when the client accepts text/event-stream; one JSON
object with "stream": false), POST /v1/score; errors are JSON objects {"error": ..., "field": ...}. And
OpenAI's (openai_api.py): GET /v1/models, POST /v1/completions, POST /v1/chat/completions, its errors
{"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import math
import signal
import socket
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..model.checkpoint import run_name
from ..version import __version__
from . import native_api, openai_api
from .config import ServeConfig
from .engine import Engine, Job
from .guard import guarded_protocol, quiet_about
from .openapi import document

if TYPE_CHECKING:
    from ..api.model import Model

MAX_BODY = 8 * 1024 * 1024  # bytes of request body read at most


def check_installed() -> None:
    """Refuse early, before a model is loaded, where the serve extra is missing."""
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"charrnn serve needs {' and '.join(missing)}: pip install 'charrnn[serve]'")


RETRY_AFTER = 5  # seconds a client refused for a full queue is told to wait (Retry-After)


def _json(record: dict, status: int = 200):
    from starlette.responses import Response

    headers = {"retry-after": str(RETRY_AFTER)} if status == 503 else None
    return Response(json.dumps(record, ensure_ascii=False) + "\n", status, headers=headers,
                    media_type="application/json")  # a line, for curl


async def _body(request, seconds: float) -> bytes:
    """The request's body, refused past MAX_BODY (413) or when it takes longer than `seconds` to arrive (408: a slow
    body would hold the connection)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise native_api.RequestError(f"the body is {int(declared):,} bytes, more than {MAX_BODY:,}; send less", status=413)
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    raise native_api.RequestError(f"the body is more than {MAX_BODY:,} bytes; send less", status=413)
    except TimeoutError:
        raise native_api.RequestError(f"the body took longer than {seconds:g} s to arrive (the server's "
                                      "--client-timeout); send it at once", status=408) from None
    return bytes(body)


async def cancel_on_disconnect(receive, *jobs: Job) -> None:
    """Wait for the client to go away (its ASGI http.disconnect), then cancel its jobs."""
    while (await receive())["type"] != "http.disconnect":
        pass
    for job in jobs:
        job.cancel()


def json_lines(records: list) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def named_events(records: list) -> bytes:
    """Server-sent events named by each record's type (/v1/sample for clients that accept text/event-stream)."""
    return "".join(f"event: {r['type']}\ndata: {json.dumps(r, ensure_ascii=False)}\n\n" for r in records).encode()


def data_events(records: list) -> bytes:
    """OpenAI's server-sent `data:` events; a string record (its "[DONE]") is sent as it is."""
    return "".join(f"data: {r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)}\n\n" for r in records).encode()


class SlowClient(Exception):
    """A client took no write of its streamed answer for --client-timeout seconds: its jobs are cancelled and the
    connection closed (uvicorn closes it when the app raises; serve's log filter keeps this out of stderr)."""


class RecordStream:
    """An ASGI response that sends records as the jobs make them (`records`: an async iterator of lists, each list
    one write, encoded by `encode`) and cancels the jobs when the client disconnects, however far it has got."""

    def __init__(self, records, jobs: list[Job], encode, media: str, write_seconds: float = math.inf):
        self.records, self.jobs, self.encode, self.media = records, jobs, encode, media
        self.write_seconds = write_seconds  # a client that takes no write for this long is left (--client-timeout)

    async def __call__(self, scope, receive, send) -> None:
        watcher = asyncio.create_task(cancel_on_disconnect(receive, *self.jobs))

        async def write(message: dict) -> None:
            try:
                async with asyncio.timeout(self.write_seconds):
                    await send(message)
            except TimeoutError:
                raise SlowClient from None

        try:
            await write({"type": "http.response.start", "status": 200,
                         "headers": [(b"content-type", f"{self.media}; charset=utf-8".encode()),
                                     (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})
            async for records in self.records:
                await write({"type": "http.response.body", "body": self.encode(records), "more_body": True})
            await write({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away mid-write
            pass
        finally:
            watcher.cancel()
            for job in self.jobs:
                job.cancel()  # a no-op for a finished job; otherwise its streams leave the batch


async def finish(receive, jobs: list[Job], each=None) -> Job | None:
    """Wait for the jobs of an answer that does not stream (each(job index, event) sees their events), cancelling
    them if the client disconnects first; returns the first job that failed (its error and status), or None."""
    watcher = asyncio.create_task(cancel_on_disconnect(receive, *jobs))
    try:
        for j, job in enumerate(jobs):
            async for events in job.updates():
                for event in events if each else ():
                    each(j, event)
            if job.error:
                return job
    finally:
        watcher.cancel()
        for job in jobs:
            job.cancel()
    return None


class Service:
    """The routes of one loaded model (charrnn.Model); its engine runs while the app does (lifespan)."""

    def __init__(self, loaded: Model, cfg: ServeConfig):
        self.loaded, self.cfg = loaded, cfg
        self.path, self.model, self.vocab, self.ckpt = loaded.path, loaded.network, loaded.codec, loaded.checkpoint
        self.device = self.model.device
        self.engine = Engine(self.model, self.vocab, self.device, cfg.max_batch)
        self.rows = list(loaded.info.items())
        self.name = run_name(self.path)  # the model's id in /v1/models
        self.openapi = document(self.name, cfg.max_batch, __version__)
        self._searches: set[asyncio.Task] = set()  # beam searches running (a task needs a reference to live)

    async def page(self, request):
        from starlette.responses import HTMLResponse

        return HTMLResponse((resources.files("charrnn.serve") / "web" / "index.html").read_text(encoding="utf-8"))

    async def schema(self, request):
        """GET /openapi.json: this server's API (serve/openapi.py)."""
        return _json(self.openapi)

    async def info(self, request):
        return _json(native_api.info_record(self.path, self.ckpt, self.rows, self.engine.load()))

    def _room(self) -> None:
        """Refuse a new request while --max-queue requests wait for room in the batch (503, with Retry-After)."""
        waiting = self.engine.waiting()
        if waiting >= self.cfg.max_queue:
            raise native_api.RequestError(f"the server is busy: {waiting:,} requests are waiting for room (its "
                                          f"--max-queue); retry in {RETRY_AFTER} s", status=503)

    async def sample(self, request):
        from ..writing.sample import resolve_seed

        # In a worker thread: a constraint's automaton may take a moment to build (writing/constraint.py bounds it).
        req = await asyncio.to_thread(native_api.sample_request, await _body(request, self.cfg.client_timeout),
                                      self.vocab, self.engine.max_batch, resolve_seed)
        self._room()
        job = req.job(self.cfg.request_timeout)
        if req.cfg.beam:
            self._searches.add(task := asyncio.create_task(self._beam(req, job)))
            task.add_done_callback(self._searches.discard)
        else:
            self.engine.submit(job)
        if req.stream:
            sse = "text/event-stream" in request.headers.get("accept", "")
            return RecordStream(native_api.job_records(req, job), [job], named_events if sse else json_lines,
                                "text/event-stream" if sse else "application/x-ndjson", self.cfg.client_timeout)
        failed = await finish(request.receive, [job])
        if failed:
            return _json({"error": failed.error}, failed.status)
        return _json(native_api.done_record(req, job, time.perf_counter() - job.started))

    async def _beam(self, req: native_api.SampleRequest, job: Job) -> None:
        """A beam search, in a worker thread beside the engine's batch (the model is only read), into `job` whole."""
        from ..writing.beam import beam_search

        try:
            found = await asyncio.to_thread(beam_search, self.model, self.vocab, req.prime, req.cfg, self.device,
                                            lambda: job.cancelled or time.perf_counter() > job.deadline)
        except Exception as e:  # the client hears it as the job's error; the server goes on
            job.fail(f"beam search failed: {e}")
            return
        if not found and not job.cancelled:
            job.fail(f"beam search took longer than the server's --request-timeout ({self.cfg.request_timeout:g} s); "
                     "ask for fewer beams or a shorter length", 503)
            return
        job.labels = [h.label for h in found] if found and found[0].label is not None else None
        job.complete([(h.text, h.ended, h.logprob) for h in found])

    async def models(self, request):
        return _json(openai_api.models_record(self.name, int(self.path.stat().st_mtime)))

    async def completions(self, request):
        return await self._openai(request, chat=False)

    async def chat(self, request):
        return await self._openai(request, chat=True)

    async def _openai(self, request, chat: bool):
        """POST /v1/completions and /v1/chat/completions: one job per prompt in the shared batch."""
        from ..writing.sample import resolve_seed

        try:
            c = await asyncio.to_thread(openai_api.completion_request, await _body(request, self.cfg.client_timeout),
                                        self.vocab, self.engine.max_batch, resolve_seed, self.name, chat)
            self._room()
        except native_api.RequestError as e:
            return _json(openai_api.error_record(e), e.status)
        for job in c.make_jobs(self.cfg.request_timeout):
            self.engine.submit(job)
        if c.stream:
            return RecordStream(openai_api.chunks(c), c.jobs, data_events, "text/event-stream", self.cfg.client_timeout)
        tally = openai_api.Tally(c)
        failed = await finish(request.receive, c.jobs, tally.add)
        if failed:
            return _json(openai_api.server_error_record(failed.error), failed.status)
        return _json(tally.whole())

    async def score(self, request):
        """POST /v1/score: the texts scored by the engine a piece at a time between its steps (what charrnn score and
        Model.scores compute: scoring.evaluation.scoring)."""
        from ..api.scoring import Score
        from ..scoring.evaluation import scoring

        texts, label = native_api.score_texts(await _body(request, self.cfg.client_timeout), self.vocab)
        losses, kinds = await self.engine.piecewise(scoring(self.model, self.vocab, texts, self.device, label))
        return _json({"scores": [Score.of(t, loss, self.vocab.missing(t) if loss is None else [], kind).record()
                                 for t, loss, kind in zip(texts, losses, kinds, strict=True)]})

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        self.loop = asyncio.get_running_loop()
        task = asyncio.create_task(self.engine.run())
        try:
            yield
        finally:
            task.cancel()


def build_app(service: Service):
    """The Starlette application: routes, errors as JSON, and CORS for the origins --allow-origin names."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.routing import Route

    async def request_error(request, exc: native_api.RequestError):
        return _json(exc.record(), exc.status)

    async def http_error(request, exc: HTTPException):
        posts = ("/v1/sample", "/v1/score", "/v1/completions", "/v1/chat/completions")
        hint = {404: "; the routes are GET /, GET /openapi.json, GET /v1/info, POST /v1/sample, POST /v1/score, and "
                     "OpenAI's GET /v1/models, POST /v1/completions, POST /v1/chat/completions",
                405: f"; {request.url.path} takes {'POST' if request.url.path in posts else 'GET'}"}
        answer = _json({"error": f"{exc.detail}: {request.method} {request.url.path}{hint.get(exc.status_code, '')}"},
                       exc.status_code)
        answer.headers.update(exc.headers or {})  # a 405's Allow
        return answer

    async def internal_error(request, exc: Exception):
        message = f"internal error: {type(exc).__name__}: {exc}"
        if request.url.path in ("/v1/completions", "/v1/chat/completions"):  # in OpenAI's shape there too
            return _json(openai_api.server_error_record(message), 500)
        return _json({"error": message}, 500)

    routes = [Route("/", service.page), Route("/openapi.json", service.schema), Route("/v1/info", service.info),
              Route("/v1/sample", service.sample, methods=["POST"]), Route("/v1/score", service.score, methods=["POST"]),
              Route("/v1/models", service.models), Route("/v1/completions", service.completions, methods=["POST"]),
              Route("/v1/chat/completions", service.chat, methods=["POST"])]
    cors = [Middleware(CORSMiddleware, allow_origins=list(service.cfg.allow_origin), allow_methods=["GET", "POST"],
                       allow_headers=["content-type", "accept"])] if service.cfg.allow_origin else []
    return Starlette(routes=routes, lifespan=service.lifespan, middleware=cors,
                     exception_handlers={native_api.RequestError: request_error, HTTPException: http_error,
                                         Exception: internal_error})


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, or a UsageError naming why not (port in use, unknown host)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port or --host") from None


def serving(path: Path, url: str, host: str) -> None:
    """Where the server listens (stderr): the page and the API are at url."""
    from ..console import stderr_console

    local = host in ("localhost", "::1") or host.startswith("127.")
    stderr_console().print(f"charrnn serve: {path} at {url} (Ctrl-C stops)"
                           + ("" if local else f"; listening on {host}: anyone who can reach this machine can use it"),
                           markup=False)


def run_server(service: Service, quiet: bool = False) -> None:
    """Serve until Ctrl-C on service.cfg's host and port, saying where on stderr (unless quiet) once the socket listens."""
    import uvicorn

    host = service.cfg.host
    sock = listen(host, service.cfg.port)
    bound = sock.getsockname()
    url = f"http://{f'[{bound[0]}]' if ':' in bound[0] else bound[0]}:{bound[1]}/"
    if not quiet:
        serving(service.path, url, host)
    class Server(uvicorn.Server):
        received: int | None = None

        def handle_exit(self, sig, frame):
            self.received = sig
            # Streams never finish on their own in time: end them now, each with a last line saying why.
            if getattr(service, "loop", None) is not None:
                service.loop.call_soon_threadsafe(service.engine.close, "the server is shutting down")
            super().handle_exit(sig, frame)

    cfg = service.cfg
    quiet_about(SlowClient)
    # Connections beyond the requests that may run and wait, with room for quick ones (/v1/info, the page): a 503.
    config = uvicorn.Config(build_app(service), log_level="warning", access_log=False, timeout_graceful_shutdown=2,
                            http=guarded_protocol(cfg.client_timeout), limit_concurrency=cfg.max_batch + cfg.max_queue + 256)
    server = Server(config)
    server.run(sockets=[sock])
    # uvicorn raises the signal again after its graceful shutdown, but asyncio's runner may take that SIGINT as a
    # request to cancel a task that is already ending, and return: Ctrl-C still exits 130, SIGTERM as SIGTERM does.
    if server.received == signal.SIGINT:
        raise KeyboardInterrupt
    if server.received is not None:
        signal.raise_signal(server.received)
