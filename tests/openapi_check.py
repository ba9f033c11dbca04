"""Every answer the tests get from `charrnn serve` is checked against the server's own /openapi.json: its status is
documented for the route, and its body validates against the schema documented for that status and content type
(JSON, JSON lines read as a list of records, server-sent events each by its data's schema)."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator


class Contract:
    """A server's /openapi.json, and the check of one answer against it."""

    def __init__(self, document: dict):
        self.document = document

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        """AssertionError naming what the answer breaks: an undocumented route, status or content type, or a body
        that does not validate."""
        path = path.split("?")[0]
        operation = self.document["paths"].get(path, {}).get(method.lower())
        if operation is None:  # an undocumented route answers only 404 or 405
            assert status in (404, 405), f"{method} {path} is not in /openapi.json, and answered {status}"
            return
        response = operation["responses"].get(str(status))
        assert response is not None, f"{method} {path} answered {status}, which /openapi.json does not list"
        media = content_type.split(";")[0].strip()
        content = response["content"].get(media)
        assert content is not None, f"{method} {path} {status} answered {media}, which /openapi.json does not list"
        schema = content["schema"]
        if media == "application/json":
            self.validate(schema, json.loads(body))
        elif media == "application/x-ndjson":
            self.validate(schema, [json.loads(line) for line in body.splitlines() if line.strip()])
        elif media == "text/event-stream":
            for event in events(body):
                self.validate(schema, event)
                data = schema["properties"]["data"]
                if event["data"] != "[DONE]":
                    inner = data.get("contentSchema") or data["anyOf"][1]["contentSchema"]
                    self.validate(inner, json.loads(event["data"]))

    @staticmethod
    def validate(schema: dict, value) -> None:
        errors = sorted(Draft202012Validator(schema).iter_errors(value), key=str)
        assert not errors, f"an answer breaks /openapi.json: {errors[0].message} at {list(errors[0].absolute_path)}"


def events(body: bytes) -> list[dict]:
    """Server-sent events as a client parses them: {"event": name, "data": text} each."""
    out = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            out.append(fields)
    return out
