"""The OpenAI-compatible API over the same engine, apart from the web framework: GET /v1/models, POST
/v1/completions and POST /v1/chat/completions, in OpenAI's shapes, so the clients people already use
(the official `openai` package, editors, `llm`, agent frameworks) call charrnn unchanged.

A token is a character. A request becomes one engine Job per prompt (n samples each), with the
SampleConfig `charrnn sample` would use for the same settings, so a seeded completion is the text
`charrnn sample --seed` writes; a labelled model takes charrnn's own field `label` (else each sample's kind is
drawn, as sample draws it). A chat's messages have no turns for a character model: their contents,
joined by newlines, are the prompt it continues. Errors are OpenAI's {"error": {message, type, param, code}}.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..text.data import Vocab
from ..writing.config import SampleConfig
from .engine import End, Job, Text
from .native_api import (
    BOOLEAN,
    INTEGER,
    MAX_LENGTH,
    MAX_TOP,
    NUMBER,
    SAMPLE_FIELDS,
    STRING,
    Field,
    RequestError,
    _int,
    _number,
    _strings,
    check_limits,
    checked_constraint,
    checked_label,
    checked_prime,
    one_or_many,
    read_object,
)


def _optional(kind: str, check: Callable, schema: dict) -> Field:
    return Field(None, kind, check, optional=True, schema=schema)


def _stop(v) -> bool:
    return isinstance(v, str) or _strings(v)


COMMON_FIELDS: dict[str, Field] = {
    "model": _optional("a string", lambda v: isinstance(v, str), STRING),  # any name: the one model is served
    "max_tokens": _optional("an integer", _int, {**INTEGER, "minimum": 1, "maximum": MAX_LENGTH}),
    "temperature": _optional("a number from 0 to 2", lambda v: _number(v) and 0 <= v <= 2,
                             {**NUMBER, "minimum": 0, "maximum": 2}),
    "top_p": _optional("a number", _number, {**NUMBER, "exclusiveMinimum": 0, "maximum": 1}),
    "n": _optional("an integer", _int, {**INTEGER, "minimum": 1}),  # n x prompts at most the server's --max-batch
    "stop": _optional("a string or a list of strings", _stop, one_or_many(1)),
    "seed": _optional("an integer", lambda v: _int(v) and 0 <= v < 2**63, {**INTEGER, "minimum": 0, "maximum": 2**63 - 1}),
    "stream": _optional("true or false", lambda v: isinstance(v, bool), BOOLEAN),
    "stream_options": _optional("an object", lambda v: isinstance(v, dict), {"type": "object"}),
    "user": _optional("a string", lambda v: isinstance(v, str), STRING),
    "label": SAMPLE_FIELDS["label"],  # charrnn's own (the openai package sends it in extra_body): a labelled model's kind
    # charrnn's own constraints (extra_body too), and vLLM's name for the expression
    "regex": SAMPLE_FIELDS["regex"], "guided_regex": SAMPLE_FIELDS["regex"], "allow": SAMPLE_FIELDS["allow"],
    "ban": _optional("a string or a list of strings", _stop, one_or_many(1)),
    # OpenAI's, with no meaning for this model: accepted at their neutral values only (NEUTRAL).
    "frequency_penalty": _optional("a number", _number, {"const": 0}),
    "presence_penalty": _optional("a number", _number, {"const": 0}),
    "logit_bias": _optional("an object", lambda v: isinstance(v, dict), {"type": "object", "maxProperties": 0}),
}
NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "logit_bias": {}, "best_of": 1, "suffix": None}
COMPLETION_FIELDS = {**COMMON_FIELDS, "prompt": Field(None, "a string or a list of strings", _stop, schema=one_or_many()),
                     "logprobs": _optional(f"an integer from 0 to {MAX_TOP}", lambda v: _int(v) and 0 <= v <= MAX_TOP,
                                           {**INTEGER, "minimum": 0, "maximum": MAX_TOP}),
                     "echo": _optional("true or false", lambda v: isinstance(v, bool), BOOLEAN),
                     "best_of": _optional("an integer", _int, {"const": 1}),
                     "suffix": _optional("a string", lambda v: isinstance(v, str), {"not": {}})}
MESSAGE = {"type": "object", "properties": {"role": STRING, "content": {"anyOf": [STRING, {"type": "array"}]}},
           "required": ["content"]}
CHAT_FIELDS = {**COMMON_FIELDS, "messages": Field(None, "a list of messages", lambda v: isinstance(v, list) and len(v) > 0,
                                                  schema={"type": "array", "items": MESSAGE, "minItems": 1}),
               "max_completion_tokens": _optional("an integer", _int, {**INTEGER, "minimum": 1, "maximum": MAX_LENGTH}),
               "logprobs": _optional("true or false", lambda v: isinstance(v, bool), BOOLEAN),
               "top_logprobs": _optional(f"an integer from 0 to {MAX_TOP}", lambda v: _int(v) and 0 <= v <= MAX_TOP,
                                         {**INTEGER, "minimum": 0, "maximum": MAX_TOP})}
REQUIRED = {"prompt", "messages"}  # the fields a request must send (the others have defaults)
OPENAI_NAMES = {"length": "max_tokens", "num_samples": "n"}  # SampleConfig field -> OpenAI field


@dataclass
class Completion:
    """One OpenAI request as engine jobs: a job per prompt, n samples each; choice index = prompt x n + sample."""

    kind: str  # "text_completion" or "chat.completion"
    model: str
    prompts: list[str]
    cfg: SampleConfig  # seed resolved
    top: int  # alternatives per character (0: no logprobs)
    echo: bool
    stream: bool
    usage_in_stream: bool
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))
    jobs: list[Job] = field(default_factory=list)

    def make_jobs(self, timeout: float) -> list[Job]:
        self.jobs = [Job(p, self.cfg, self.top, timeout) for p in self.prompts]
        return self.jobs

    def index(self, job: int, i: int) -> int:
        return job * self.cfg.num_samples + i


def read_request(body: bytes, fields: dict[str, Field], example: str) -> dict:
    """The body's fields (None where not given); RequestError for an unknown, ill-typed or non-neutral field."""
    value = read_object(body, example)
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}; a character model takes {', '.join(fields)}", unknown[0])
    v = {name: f.read(name, value.get(name)) if name in value else None for name, f in fields.items()}
    for name, neutral in NEUTRAL.items():
        if v.get(name) is not None and v[name] != neutral:
            raise RequestError(f"{name} has no meaning for a character model: leave it out (or send {neutral!r})", name)
    return v


def completion_request(body: bytes, vocab: Vocab, max_batch: int, seed: Callable[[int | None], int], model: str,
                       chat: bool = False) -> Completion:
    """POST /v1/completions' (or, with chat, /v1/chat/completions') body -> a Completion; RequestError names the
    first bad field, OpenAI's name for it."""
    if chat:
        v = read_request(body, CHAT_FIELDS, '{"messages": [{"role": "user", "content": "ROMEO."}]}')
        if v["messages"] is None:
            raise RequestError('messages is missing: send [{"role": "user", "content": "ROMEO."}]', "messages")
        prompts = [chat_prompt(v["messages"])]
        top = (1 if v["top_logprobs"] is None else max(1, v["top_logprobs"])) if v["logprobs"] else 0
        echo, length = False, v["max_completion_tokens"]
    else:
        v = read_request(body, COMPLETION_FIELDS, '{"prompt": "ROMEO.", "max_tokens": 200}')
        if v["prompt"] is None or v["prompt"] == []:
            raise RequestError("prompt is missing: send a string, or a list of strings for one completion each", "prompt")
        prompts = [v["prompt"]] if isinstance(v["prompt"], str) else v["prompt"]
        top, echo, length = v["logprobs"] or 0, bool(v["echo"]), None
    cfg = replace(sample_config(v, length, seed), label=checked_label(v["label"], vocab))
    names = OPENAI_NAMES | {"regex": "guided_regex" if v["guided_regex"] is not None else "regex"}
    check_limits(cfg, names, max_batch, len(prompts))
    prompts = [checked_prime(p, vocab, "messages" if chat else "prompt") for p in prompts]
    for p in prompts:
        checked_constraint(cfg, vocab, p, names)
    stream_options = v["stream_options"] or {}
    return Completion("chat.completion" if chat else "text_completion", model, prompts, cfg, top, echo,
                      bool(v["stream"]), bool(stream_options.get("include_usage")))


def sample_config(v: dict, length: int | None, seed: Callable[[int | None], int]) -> SampleConfig:
    """The SampleConfig `charrnn sample` would use for these OpenAI settings (temperature 0: greedy); its ranges
    and the server's limits are checked by the caller (api.check_limits)."""
    temperature = 1.0 if v["temperature"] is None else v["temperature"]
    stops = () if v["stop"] is None else v["stop"]  # an empty stop is refused, as sample refuses it
    length = next((x for x in (length, v["max_tokens"]) if x is not None), 16)  # OpenAI's default, 16
    if v["regex"] is not None and v["guided_regex"] is not None and v["regex"] != v["guided_regex"]:
        raise RequestError("regex and guided_regex are two names for one expression, and they differ: send one",
                           "guided_regex")
    bans = () if v["ban"] is None else v["ban"]
    cfg = SampleConfig(length=length, temperature=temperature or 1.0,
                       top_p=v["top_p"] if v["top_p"] is not None and v["top_p"] != 1 else None, greedy=temperature == 0,
                       num_samples=1 if v["n"] is None else v["n"], stop=(stops,) if isinstance(stops, str) else tuple(stops),
                       regex=v["regex"] if v["regex"] is not None else v["guided_regex"], allow=v["allow"],
                       ban=(bans,) if isinstance(bans, str) else tuple(bans))
    return replace(cfg, seed=seed(v["seed"]))


def chat_prompt(messages: list) -> str:
    """A chat's messages as the text a character model continues: their contents, joined by newlines."""
    texts = []
    for k, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):  # content parts: the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str) or not isinstance(m.get("role", ""), str):
            raise RequestError(f"messages[{k}] must be an object with a string content (and a string role), got "
                               f"{str(m)[:80]}", "messages")
        texts.append(content)
    return "\n".join(texts)


def error_record(e: RequestError) -> dict:
    kind = "invalid_request_error" if e.status < 500 else "server_error"
    return {"error": {"message": str(e), "type": kind, "param": e.field, "code": None}}


def server_error_record(message: str) -> dict:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


def models_record(name: str, created: int) -> dict:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "charrnn"}]}


# -- answers ------------------------------------------------------------------------------------

def _log(p: float) -> float:
    return math.log(p) if p > 0 else -9999.0  # JSON has no -inf


def logprobs_record(c: Completion, text: str, probs: list[float], alts: list, offset: int) -> dict:
    """OpenAI's logprobs of `text`'s characters: the legacy completions shape, or the chat shape."""
    name = [[(a if a is not None else "", q) for a, q in row] for row in alts]  # EOS has no text
    if c.kind == "chat.completion":
        return {"content": [{"token": ch, "logprob": _log(p), "bytes": list(ch.encode()),
                             "top_logprobs": [{"token": a, "logprob": _log(q), "bytes": list(a.encode())} for a, q in row]}
                            for ch, p, row in zip(text, probs, name, strict=True)]}
    return {"tokens": list(text), "token_logprobs": [_log(p) for p in probs],
            "top_logprobs": [{a: _log(q) for a, q in row} for row in name],
            "text_offset": [offset + k for k in range(len(text))]}


class Tally:
    """Each choice's text, logprobs and finish reason, gathered from its job's events."""

    def __init__(self, c: Completion):
        self.c = c
        total = len(c.prompts) * c.cfg.num_samples
        self.texts: list[list[str]] = [[] for _ in range(total)]
        self.probs: list[list[float]] = [[] for _ in range(total)]
        self.alts: list[list] = [[] for _ in range(total)]
        self.ended: list[str | None] = [None] * total
        self.made = [0] * total  # characters so far, per choice

    def add(self, job: int, event: Text | End) -> dict:
        """Record one event; returns the choice fragment it makes (text, logprobs, finish_reason). Streamed, each
        fragment carries its own logprobs; whole, they are kept for whole() to give once."""
        k = self.c.index(job, event.i)
        if isinstance(event, End):
            self.ended[k] = "length" if event.ended in ("length", "time") else "stop"  # cut short, or ended
            return {"index": k, "text": "", "logprobs": None, "finish_reason": self.ended[k]}
        offset = len(self.c.prompts[job]) * self.c.echo + self.made[k]
        self.texts[k].append(event.text)
        self.made[k] += len(event.text)
        logprobs = None
        if event.probs is not None and self.c.stream:
            logprobs = logprobs_record(self.c, event.text, event.probs, event.alternatives, offset)
        elif event.probs is not None:
            self.probs[k] += event.probs
            self.alts[k] += event.alternatives
        return {"index": k, "text": event.text, "logprobs": logprobs, "finish_reason": None}

    def usage(self) -> dict:
        prompt = sum(map(len, self.c.prompts)) * self.c.cfg.num_samples
        made = sum(self.made)
        return {"prompt_tokens": prompt, "completion_tokens": made, "total_tokens": prompt + made}

    def whole(self) -> dict:
        """The answer of a request that does not stream."""
        c, n = self.c, self.c.cfg.num_samples
        choices = []
        for k, texts in enumerate(self.texts):
            text = "".join(texts)
            logprobs = logprobs_record(c, text, self.probs[k], self.alts[k], len(c.prompts[k // n]) * c.echo) \
                if c.top else None
            if c.kind == "chat.completion":
                choices.append({"index": k, "message": {"role": "assistant", "content": text}, "logprobs": logprobs,
                                "finish_reason": self.ended[k]})
            else:
                choices.append({"index": k, "text": (c.prompts[k // n] if c.echo else "") + text, "logprobs": logprobs,
                                "finish_reason": self.ended[k]})
        return {**header(c), "choices": choices, "usage": self.usage()}


def header(c: Completion, chunk: bool = False) -> dict:
    prefix = "chatcmpl-" if c.kind == "chat.completion" else "cmpl-"
    return {"id": prefix + c.id, "object": c.kind + (".chunk" if chunk and c.kind == "chat.completion" else ""),
            "created": c.created, "model": c.model, "system_fingerprint": "charrnn"}


def chunk_record(c: Completion, fragment: dict) -> dict:
    """One streamed piece in OpenAI's chunk shape (chat: a delta)."""
    if c.kind == "chat.completion":
        delta = {"content": fragment["text"]} if fragment["text"] else {}
        fragment = {"index": fragment["index"], "delta": delta, "logprobs": fragment["logprobs"],
                    "finish_reason": fragment["finish_reason"]}
    return {**header(c, chunk=True), "choices": [fragment]}


async def chunks(c: Completion):
    """The streamed answer as lists of chunks, one list a write: the chunks each update of the jobs makes, the usage
    when asked for, then "[DONE]"; a failed job ends it with OpenAI's error object instead."""
    tally, opening = Tally(c), []
    for k in range(len(tally.texts)):  # chat: each choice opens with its role; echo: with its prompt
        if c.kind == "chat.completion":
            opening.append({**header(c, chunk=True), "choices": [{"index": k, "delta": {"role": "assistant", "content": ""},
                                                                  "logprobs": None, "finish_reason": None}]})
        elif c.echo:
            opening.append(chunk_record(c, {"index": k, "text": c.prompts[k // c.cfg.num_samples], "logprobs": None,
                                            "finish_reason": None}))
    if opening:
        yield opening
    for j, job in enumerate(c.jobs):
        async for events in job.updates():
            yield [chunk_record(c, tally.add(j, event)) for event in events]
        if job.error:
            yield [server_error_record(job.error)]
            return
    yield ([{**header(c, chunk=True), "choices": [], "usage": tally.usage()}] if c.usage_in_stream else []) + ["[DONE]"]
