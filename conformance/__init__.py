"""HTTP/1.0 conformance runner: replays the case corpus against any server."""

__version__ = "0.1.0"
