"""Schemathesis's hooks for charrnn serve (SCHEMATHESIS_HOOKS=schemathesis_hooks, as tests/test_fuzz.py and make fuzz
set it): a streamed /v1/sample answer, JSON lines, read as the list of records /openapi.json describes, so that every
record is validated too."""

import json

import schemathesis


@schemathesis.deserializer("application/x-ndjson")
def json_lines(ctx, response):
    return [json.loads(line) for line in response.content.splitlines() if line.strip()]
