"""The release of charrnn: the package says it, and so does a server's /openapi.json."""

__version__ = "0.1.0"
