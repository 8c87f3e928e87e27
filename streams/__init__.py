"""pynomaly-stream: the Faust app, topics, codec, agents and CLI."""

__version__ = "0.1.0"
