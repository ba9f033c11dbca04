"""GET /openapi.json: the server's API as an OpenAPI 3.1 document, made from the same declarations the server reads
requests by (native_api.SAMPLE_FIELDS and SCORE_FIELDS, openai_api's COMPLETION_FIELDS and CHAT_FIELDS: each Field's
schema, its limits as minimum/maximum/maxLength) and the shapes of the records it answers with (below, beside the
code that makes them: native_api's and openai_api's records). tests/test_serve.py checks that every route is in it and
that every answer the tests get validates against it; schemathesis fuzzes the server from it (make fuzz).
"""

from __future__ import annotations

from typing import Any

from . import native_api, openai_api
from .native_api import INTEGER, NUMBER, STRING, Field

NULLABLE_NUMBER, NULLABLE_STRING = {"type": ["number", "null"]}, {"type": ["string", "null"]}
ERROR = {"type": "object", "properties": {"error": STRING, "field": STRING}, "required": ["error"]}
OPENAI_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": STRING, "type": STRING, "param": NULLABLE_STRING, "code": {"type": "null"}}}}}
ENDED = {"enum": ["eos", "stop", "length", "match", "time", None]}
SAMPLE_DONE = {"type": "object", "required": ["type", "seed", "prime", "samples", "characters", "seconds"], "properties": {
    "type": {"const": "done"}, "seed": INTEGER, "prime": STRING, "characters": INTEGER, "seconds": NUMBER,
    "samples": {"type": "array", "items": {"type": "object", "required": ["text", "ended"], "properties": {
        "text": STRING, "ended": ENDED, "logprob": NUMBER, "label": STRING}}}}}
SAMPLE_RECORD = {"oneOf": [  # one line of a streamed /v1/sample (JSON lines, or server-sent events named by type)
    {"type": "object", "required": ["type", "seed", "n", "prime"],
     "properties": {"type": {"const": "start"}, "seed": INTEGER, "n": INTEGER, "prime": STRING}},
    {"type": "object", "required": ["type", "i", "text"], "properties": {
        "type": {"const": "text"}, "i": INTEGER, "text": STRING, "p": {"type": "array", "items": NUMBER},
        "top": {"type": "array", "items": {"type": "array", "items": {  # per character: [character or null, p] pairs
            "type": "array", "items": {"anyOf": [NULLABLE_STRING, NUMBER]}, "minItems": 2, "maxItems": 2}}}}},
    {"type": "object", "required": ["type", "i", "ended"], "properties": {"type": {"const": "end"}, "i": INTEGER,
                                                                          "ended": ENDED}},
    SAMPLE_DONE,
    {"type": "object", "required": ["type", "error"], "properties": {"type": {"const": "error"}, "error": STRING}}]}
SCORES = {"type": "object", "required": ["scores"], "properties": {"scores": {"type": "array", "items": {
    "type": "object", "required": ["text", "bpc", "logprob", "predictions"], "properties": {
        "text": STRING, "bpc": NULLABLE_NUMBER, "logprob": NULLABLE_NUMBER, "predictions": INTEGER,
        "unknown": {"type": "array", "items": STRING}, "label": STRING, "label_p": NUMBER}}}}}
INFO = {"type": "object", "required": ["checkpoint", "summary", "model", "vocab", "labels", "limits", "load"],
        "properties": {"checkpoint": STRING, "summary": {"type": "object", "additionalProperties": STRING},
                       "model": {"type": "object"}, "vocab": {"type": "array", "items": STRING},
                       "labels": {"type": "array", "items": STRING},
                       "label_counts": {"type": "object", "additionalProperties": INTEGER},
                       "best_val_nats": NULLABLE_NUMBER, "limits": {"type": "object", "additionalProperties": INTEGER},
                       "load": {"type": "object", "additionalProperties": INTEGER}}}
MODELS = {"type": "object", "required": ["object", "data"], "properties": {"object": {"const": "list"}, "data": {
    "type": "array", "items": {"type": "object", "required": ["id", "object", "created", "owned_by"], "properties": {
        "id": STRING, "object": {"const": "model"}, "created": INTEGER, "owned_by": STRING}}}}}


def events(data: dict, done: bool = False) -> dict:
    """A server-sent event, as a client parses it: its name and its data, a JSON text of `data`'s shape (with `done`,
    or the last one's [DONE], as OpenAI ends a stream)."""
    json_text = {"type": "string", "contentMediaType": "application/json", "contentSchema": data}
    return {"type": "object", "required": ["data"], "properties": {
        "event": STRING, "data": {"anyOf": [{"const": "[DONE]"}, json_text]} if done else json_text}}


def chunk(chat: bool) -> dict:
    """One chunk of OpenAI's streamed completion (chunks in openai_api): choices' new text (a chat's delta), and, with
    stream_options include_usage, a last chunk with the usage and no choices."""
    part = {"delta": {"type": "object", "properties": {"role": STRING, "content": STRING}}} if chat else {"text": STRING}
    choice = {"type": "object", "required": ["index", "finish_reason"],
              "properties": {"index": INTEGER, "logprobs": LOGPROBS, "finish_reason": FINISH, **part}}
    return {"type": "object", "required": ["id", "object", "created", "model", "choices"], "properties": {
        "id": STRING, "object": {"const": "chat.completion.chunk" if chat else "text_completion"}, "created": INTEGER,
        "model": STRING, "system_fingerprint": STRING, "choices": {"type": "array", "items": choice},
        "usage": {"anyOf": [USAGE, {"type": "null"}]}}}


USAGE = {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
         "properties": {"prompt_tokens": INTEGER, "completion_tokens": INTEGER, "total_tokens": INTEGER}}
FINISH = {"enum": ["stop", "length", None]}
LOGPROBS = {"type": ["object", "null"]}


def completion(chat: bool) -> dict:
    """OpenAI's completion object (text_completion) or chat completion (chat.completion), as Tally.whole makes them."""
    choice = {"index": INTEGER, "logprobs": LOGPROBS, "finish_reason": FINISH}
    choice |= ({"message": {"type": "object", "required": ["role", "content"],
                            "properties": {"role": {"const": "assistant"}, "content": STRING}}} if chat else {"text": STRING})
    return {"type": "object", "required": ["id", "object", "created", "model", "choices", "usage"], "properties": {
        "id": STRING, "object": {"const": "chat.completion" if chat else "text_completion"}, "created": INTEGER,
        "model": STRING, "system_fingerprint": STRING, "usage": USAGE,
        "choices": {"type": "array", "items": {"type": "object", "required": list(choice), "properties": choice}}}}


def body(fields: dict[str, Field], required: frozenset[str] | set[str] = frozenset(),
         limits: dict[str, dict] | None = None) -> dict:
    """A request body's schema from its fields: each field's schema (null allowed where it is optional), its default,
    and the server's own limits (`limits`: field -> more keywords); no other field."""
    properties = {}
    for name, f in fields.items():
        schema = {**f.schema, **(limits or {}).get(name, {})}
        if f.optional:
            schema = {"anyOf": [schema, {"type": "null"}]}
        if name not in required:
            schema["default"] = f.default
        properties[name] = schema
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "required": sorted(required & set(fields))}


def answer(schema: dict, media: str = "application/json", description: str = "the answer") -> dict:
    return {"description": description, "content": {media: {"schema": schema}}}


def errors(shape: dict, *statuses: int) -> dict[str, Any]:
    words = {400: "a field is wrong (named)", 408: "the body came too slowly (--client-timeout)",
             413: "the body is too large", 503: "the server is busy (--max-queue), or the request waited its whole "
                                                 "--request-timeout; retry after Retry-After seconds",
             500: "the request failed inside the server (never expected)"}
    return {str(s): answer(shape, description=words[s]) for s in statuses}


def document(model: str, max_batch: int, version: str) -> dict:
    """The OpenAPI 3.1 document of a server serving `model` with --max-batch `max_batch`."""
    batch = {"n": {"maximum": max_batch}}
    sample = {"200": {"description": "the samples: one JSON object with stream false; else records as they are made",
                      "content": {"application/json": {"schema": SAMPLE_DONE},
                                  # one record a line (OpenAPI 3.1 has no schema for a stream's items: the lines, read
                                  # as a list, are described)
                                  "application/x-ndjson": {"schema": {"type": "array", "items": SAMPLE_RECORD}},
                                  "text/event-stream": {"schema": events(SAMPLE_RECORD)}}}}
    paths = {
        "/": {"get": {"summary": "The co-writing page", "responses": {"200": answer(STRING, "text/html", "the page")}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": answer({"type": "object"})}}},
        "/v1/info": {"get": {"summary": "The model and the server's load", "responses": {"200": answer(INFO)}}},
        "/v1/sample": {"post": {"summary": "Write samples",
                                "requestBody": request(body(native_api.SAMPLE_FIELDS, limits=batch), required=False),
                                "responses": {**sample, **errors(ERROR, 400, 408, 413, 503, 500)}}},
        "/v1/score": {"post": {"summary": "Score texts as whole documents",
                               "requestBody": request(body(native_api.SCORE_FIELDS, {"texts"})),
                               "responses": {"200": answer(SCORES), **errors(ERROR, 400, 408, 413, 500)}}},
        "/v1/models": {"get": {"summary": "OpenAI's model list: the one model served",
                               "responses": {"200": answer(MODELS)}}},
    }
    for path, chat in (("/v1/completions", False), ("/v1/chat/completions", True)):
        fields = openai_api.CHAT_FIELDS if chat else openai_api.COMPLETION_FIELDS
        ok = {"200": {"description": "OpenAI's completion; with stream true, its chunks as server-sent events (the last "
                                     "one's data [DONE])",
                      "content": {"application/json": {"schema": completion(chat)},
                                  "text/event-stream": {"schema": events(chunk(chat), done=True)}}}}
        paths[path] = {"post": {"summary": "OpenAI's " + ("chat completions" if chat else "completions"),
                                "requestBody": request(body(fields, openai_api.REQUIRED, batch)),
                                "responses": {**ok, **errors(OPENAI_ERROR, 400, 408, 413, 503, 500)}}}
    return {"openapi": "3.1.0", "info": {"title": f"charrnn serve: {model}", "version": version,
                                         "description": "charrnn's own API (/v1/sample, /v1/score, /v1/info) and the "
                                                        "OpenAI-compatible one (/v1/models, /v1/completions, "
                                                        "/v1/chat/completions) of one character-level model."},
            "paths": paths}


def request(schema: dict, required: bool = True) -> dict:
    """A JSON request body (/v1/sample's may be left out: every field has a default)."""
    return {"required": required, "content": {"application/json": {"schema": schema}}}

