"""Errors an engine raises; workers/service.py maps each to one gRPC status code."""

from __future__ import annotations

from parley.errors import ParleyError


class EngineError(ParleyError):
    """Base class: an engine failed in a way it understands."""


class InvalidRequest(EngineError):
    """The request cannot be served as sent (bad audio, empty messages, unknown voice)."""


class ModelNotFound(EngineError):
    """The configured model files are missing or unreadable."""


class BadResponse(EngineError):
    """A backend answered with something the engine cannot use (an audio format it cannot
    read): a configuration problem, not a passing one."""


class EngineUnavailable(EngineError):
    """A backend the engine depends on (a remote API, a device) cannot be reached."""


class MissingExtra(EngineError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'parley[{extra}]'")
        self.package = package
        self.extra = extra
