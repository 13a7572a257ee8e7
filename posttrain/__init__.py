"""posttrain: declarative, resumable post-training pipelines (the Nemotron Nano 2 recipe)."""

__version__ = "0.1.0"


class PosttrainError(Exception):
    """A user-facing error: the CLI prints its message on one line, without a stack trace."""
