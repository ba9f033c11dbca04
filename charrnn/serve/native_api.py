"""The HTTP API's requests and answers, apart from the web framework: each request body checked field by
field (a bad one is a RequestError naming it, a 400), and the JSON records the server sends.

POST /v1/sample takes SAMPLE_FIELDS; POST /v1/score takes {"texts": [...]}; GET /v1/info takes nothing.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UsageError
from ..text.data import Vocab
from ..writing.config import SampleConfig
from ..writing.constraint import ConstraintError, constraint_for
from ..writing.sample import check_prime
from .engine import End, Job, Text

MAX_LENGTH = 1_000_000  # new characters per sample a request may ask for
MAX_CHARACTERS = 10_000_000  # n x length: what one request's answer may hold
MAX_PRIME = 100_000  # characters of prime: read a piece at a time between the other streams' steps (engine.py)
MAX_TOP = 20  # alternatives per character
MAX_SCORE_CHARS = 2_000_000  # characters of text one score request may send
MAX_BEAM = 64  # beams of a beam search: each step weighs beam x vocabulary candidates


class RequestError(UsageError):
    """A request the server refuses with 400 (or `status`): one line naming the field and the fix."""

    def __init__(self, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status

    def record(self) -> dict:
        return {"error": str(self), **({"field": self.field} if self.field else {})}


class Field:
    """One JSON field of a request: its default, what it must be (`kind`, in words, for messages; `schema`, the JSON
    Schema of a value, for /openapi.json, with the ranges the server checks), and how to check a value (check returns
    the value to use or raises RequestError naming the field). optional: null is a value too (the default)."""

    def __init__(self, default, kind: str, check: Callable | None = None, optional: bool = False,
                 schema: dict | None = None):
        self.default, self.kind, self._check, self.optional, self.schema = default, kind, check, optional, schema or {}

    def read(self, name: str, value):
        if value is None and self.optional:
            return None
        if not self._check(value):
            raise RequestError(f"{name} must be {self.kind}{' or null' if self.optional else ''}, got {json.dumps(value)}",
                               name)
        return value


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _strings(v) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


INTEGER, NUMBER, BOOLEAN, STRING = {"type": "integer"}, {"type": "number"}, {"type": "boolean"}, {"type": "string"}


def one_or_many(min_length: int = 0) -> dict:
    """The schema of one string or a list of them (stop, ban)."""
    one = {"type": "string", "minLength": min_length} if min_length else STRING
    return {"anyOf": [one, {"type": "array", "items": one}]}


SAMPLE_FIELDS: dict[str, Field] = {
    "prime": Field("", "a string", lambda v: isinstance(v, str), schema={"type": "string", "maxLength": MAX_PRIME}),
    "length": Field(500, "an integer", _int, schema={**INTEGER, "minimum": 1, "maximum": MAX_LENGTH}),
    "temperature": Field(1.0, "a number", _number, schema={**NUMBER, "exclusiveMinimum": 0}),
    "top_k": Field(None, "an integer", _int, optional=True, schema={**INTEGER, "minimum": 1}),
    "top_p": Field(None, "a number", _number, optional=True, schema={**NUMBER, "exclusiveMinimum": 0, "maximum": 1}),
    "greedy": Field(False, "true or false", lambda v: isinstance(v, bool), schema=BOOLEAN),
    "seed": Field(None, "an integer from 0 to 2**63 - 1", lambda v: _int(v) and 0 <= v < 2**63, optional=True,
                  schema={**INTEGER, "minimum": 0, "maximum": 2**63 - 1}),
    "n": Field(1, "an integer", _int, schema={**INTEGER, "minimum": 1}),  # at most the server's --max-batch
    "stop": Field([], "a string or a list of strings", lambda v: isinstance(v, str) or _strings(v), schema=one_or_many(1)),
    "keep_stop": Field(False, "true or false", lambda v: isinstance(v, bool), schema=BOOLEAN),
    "skip_unknown": Field(False, "true or false", lambda v: isinstance(v, bool), schema=BOOLEAN),
    "top": Field(0, f"an integer from 0 to {MAX_TOP}", lambda v: _int(v) and 0 <= v <= MAX_TOP,
                 schema={**INTEGER, "minimum": 0, "maximum": MAX_TOP}),
    "stream": Field(True, "true or false", lambda v: isinstance(v, bool), schema=BOOLEAN),
    "beam": Field(None, f"an integer from 1 to {MAX_BEAM}", lambda v: _int(v) and 1 <= v <= MAX_BEAM, optional=True,
                  schema={**INTEGER, "minimum": 1, "maximum": MAX_BEAM}),
    "label": Field(None, "a string (one of /v1/info's labels)", lambda v: isinstance(v, str), optional=True,
                   schema=STRING),
    "regex": Field(None, "a string (a regular expression)", lambda v: isinstance(v, str), optional=True, schema=STRING),
    "allow": Field(None, "a string (a class of characters such as a-z)", lambda v: isinstance(v, str), optional=True,
                   schema=STRING),
    "ban": Field([], "a string or a list of strings", lambda v: isinstance(v, str) or _strings(v), schema=one_or_many(1)),
}
LISTS = ("stop", "ban")  # fields that take one string or several: SampleConfig holds a tuple
CONFIG_NAMES = {"n": "num_samples"}  # JSON field -> SampleConfig field where they differ


def read_object(body: bytes, example: str) -> dict:
    """The request body as a JSON object, or a RequestError saying what it is instead."""
    try:
        value = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError(f"the body is not JSON ({e}); send an object like {example}") from None
    if not isinstance(value, dict):
        raise RequestError(f"the body must be a JSON object like {example}, got {type(value).__name__}")
    return value


def read_fields(body: dict, fields: dict[str, Field]) -> dict:
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}; the fields are {', '.join(fields)}", unknown[0])
    return {name: f.read(name, body[name]) if name in body else f.default for name, f in fields.items()}


@dataclass(frozen=True)
class SampleRequest:
    prime: str
    cfg: SampleConfig  # seed resolved
    top: int
    stream: bool

    def job(self, timeout: float) -> Job:
        return Job(self.prime, self.cfg, self.top, timeout)


def sample_request(body: bytes, vocab: Vocab, max_batch: int, seed: Callable[[int | None], int]) -> SampleRequest:
    """POST /v1/sample's body -> a SampleRequest; RequestError names the first bad field. seed(None) picks one."""
    v = read_fields(read_object(body, '{"prime": "ROMEO.", "length": 200}'), SAMPLE_FIELDS)
    settings = {CONFIG_NAMES.get(k, k): value for k, value in v.items()
                if CONFIG_NAMES.get(k, k) in SampleConfig.__dataclass_fields__ and k != "seed"}
    cfg = SampleConfig(**settings | {k: tuple([v[k]] if isinstance(v[k], str) else v[k]) for k in LISTS})
    check_limits(cfg, {c: k for k, c in CONFIG_NAMES.items()}, max_batch)
    prime = checked_prime(v["prime"], vocab, "prime", v["skip_unknown"], 'remove them or send "skip_unknown": true')
    checked_label(v["label"], vocab)
    checked_constraint(cfg, vocab, prime)
    if v["beam"] and v["top"]:
        raise RequestError("top reports what sampling weighed at each character; beam search does not sample: leave "
                           "out top or beam", "top")
    return SampleRequest(prime, replace(cfg, seed=seed(v["seed"])), v["top"], v["stream"])


def check_limits(cfg: SampleConfig, names: dict[str, str], max_batch: int, prompts: int = 1) -> None:
    """RequestError naming the first setting out of range or past the server's limits, by the request's name for it
    (`names`: SampleConfig field -> request field where they differ); `prompts` requests of n samples each."""
    for name, problem in cfg.problems():
        field = names.get(name, name)
        raise RequestError(f"{field} {problem}", field)
    length, n = names.get("length", "length"), names.get("num_samples", "num_samples")
    if cfg.length > MAX_LENGTH:
        raise RequestError(f"{length} must be at most {MAX_LENGTH:,}, got {cfg.length:,}", length)
    if cfg.num_samples * prompts > max_batch:
        raise RequestError(f"{n if prompts == 1 else n + ' x prompts'} must be at most {max_batch} (the server's "
                           f"--max-batch), got {cfg.num_samples * prompts}", n)
    if cfg.num_samples * cfg.length > MAX_CHARACTERS:
        raise RequestError(f"{n} x {length} must be at most {MAX_CHARACTERS:,}, got {cfg.num_samples * cfg.length:,}; "
                           "ask for fewer or shorter samples", length)


def checked_prime(text: str, vocab: Vocab, name: str, skip_unknown: bool = False, fix: str = "remove them") -> str:
    """The text a request's samples start from (CRLF read as LF), or a RequestError naming `name`: too long, or with
    characters the model does not know (dropped with skip_unknown)."""
    if len(text) > MAX_PRIME:
        raise RequestError(f"{name} must be at most {MAX_PRIME:,} characters, got {len(text):,}; send its end", name)
    try:
        return check_prime(vocab, text.replace("\r\n", "\n"), skip_unknown, name, fix)
    except UsageError as e:
        raise RequestError(str(e), name) from None


SCORE_FIELDS = {"texts": Field(None, "a non-empty list of strings", lambda v: _strings(v) and len(v) > 0,
                                schema={"type": "array", "items": STRING, "minItems": 1}),
                "label": SAMPLE_FIELDS["label"]}


def score_texts(body: bytes, vocab: Vocab) -> tuple[list[str], str | None]:
    """POST /v1/score's body -> the texts to score (each a document), and the label to score them as (or None)."""
    v = read_fields(read_object(body, '{"texts": ["ROMEO.", "Juliet"]}'), SCORE_FIELDS)
    if v["texts"] is None:
        raise RequestError('texts is missing: send {"texts": ["some text", ...]}', "texts")
    size = sum(map(len, v["texts"]))
    if size > MAX_SCORE_CHARS:
        raise RequestError(f"texts hold {size:,} characters, more than {MAX_SCORE_CHARS:,}; send them in parts",
                           "texts", status=413)
    return [t.replace("\r\n", "\n") for t in v["texts"]], checked_label(v["label"], vocab)


def checked_constraint(cfg: SampleConfig, vocab: Vocab, prime: str, names: dict[str, str] | None = None) -> None:
    """A RequestError naming the field (by `names`, SampleConfig field -> the request's, where they differ) whose
    constraint the model cannot meet: a character it never saw, no match of its characters, none in the length."""
    try:
        constraint_for(cfg, vocab, prime, "cpu")
    except ConstraintError as e:
        field = (names or {}).get(e.field, e.field)
        raise RequestError(str(e).replace(f"--{e.field} ", f"{field} ").replace("--length", "length"), field) from None


def checked_label(label: str | None, vocab: Vocab) -> str | None:
    """The request's label, or a RequestError naming the model's labels."""
    if label is not None:
        try:
            vocab.label_id(label, "label")
        except UsageError as e:
            raise RequestError(str(e), "label") from None
    return label


# -- answers ------------------------------------------------------------------------------------

def start_record(req: SampleRequest) -> dict:
    return {"type": "start", "seed": req.cfg.seed, "n": req.cfg.num_samples, "prime": req.prime}


def event_record(event: Text | End) -> dict:
    if isinstance(event, End):
        return {"type": "end", "i": event.i, "ended": event.ended}
    record = {"type": "text", "i": event.i, "text": event.text}
    if event.probs is not None:
        record["p"] = [round(p, 5) for p in event.probs]
        record["top"] = [[[c, round(q, 5)] for c, q in alts] for alts in event.alternatives]
    return record


async def job_records(req: SampleRequest, job: Job):
    """A streamed answer as lists of records, one list a write: start, the events as they come, then done (or the
    job's error)."""
    yield [start_record(req)]
    async for events in job.updates():
        yield [event_record(e) for e in events]
    yield [{"type": "error", "error": job.error} if job.error else done_record(req, job, time.perf_counter() - job.started)]


def done_record(req: SampleRequest, job: Job, seconds: float) -> dict:
    """The whole result: sent last when streaming, alone otherwise."""
    made = sum(map(len, job.texts))
    return {"type": "done", "seed": req.cfg.seed, "prime": req.prime,
            "samples": [{"text": "".join(t), "ended": job.ended.get(i),
                         **({"logprob": round(job.logprobs[i], 6)} if i in job.logprobs else {}),
                         **({"label": job.labels[i]} if job.labels else {})}
                        for i, t in enumerate(job.texts)],
            "characters": made, "seconds": round(seconds, 4)}


def info_record(path: Path, ckpt: dict, rows: list[tuple[str, str]], load: dict) -> dict:
    """GET /v1/info: what `charrnn info` shows (summary), the parts a program needs, and the server's load."""
    best = ckpt["progress"]["best_val"]
    return {"checkpoint": str(path), "summary": dict(rows), "model": ckpt["model_config"], "vocab": ckpt["vocab"],
            "labels": ckpt.get("labels", []), "label_counts": ckpt["corpus"].get("label_counts") or {},
            "best_val_nats": best if math.isfinite(best) else None,
            "limits": {"max_length": MAX_LENGTH, "max_characters": MAX_CHARACTERS, "max_prime": MAX_PRIME,
                       "max_n": load["max_batch"], "max_top": MAX_TOP},
            "load": load}
