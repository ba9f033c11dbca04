"""charrnn serve: the engine that batches every request (engine.py), charrnn's own API (api.py), the
OpenAI-compatible API (openai_api.py), the HTTP server and its routes (server.py), and the co-writing page (web/)."""
