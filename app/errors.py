"""Typed errors of the domain. The web layer turns each into a friendly page or alert in one place.

Each carries a message fit to show a person and an HTTP status the web layer uses.
"""

from __future__ import annotations


class StackpilotError(Exception):
    """Base of every error we expect and explain; `message` is safe to show a user."""

    status = 400
    title = "Something went wrong"

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class SettingsError(StackpilotError):
    title = "Bad setting"


class EngineUnavailable(StackpilotError):
    status = 503
    title = "Docker engine unreachable"


class ComposeUnavailable(StackpilotError):
    status = 503
    title = "Docker Compose unavailable"


class ComposeFailed(StackpilotError):
    status = 502
    title = "Docker Compose failed"


class StackBusy(StackpilotError):
    status = 409
    title = "Another action is running"


class NotFound(StackpilotError):
    status = 404
    title = "Not found"


class InvalidName(NotFound):
    title = "Unknown name"


class InvalidInput(StackpilotError):
    status = 422
    title = "Check the form"


class EnvConflict(StackpilotError):
    status = 409
    title = "The file changed meanwhile"


class Forbidden(StackpilotError):
    status = 403
    title = "Not allowed"


class RateLimited(StackpilotError):
    status = 429
    title = "Too many attempts"


class OwnContainer(StackpilotError):
    """An action would stop or replace the container Stackpilot itself runs in."""

    status = 409
    title = "Stackpilot's own container"
