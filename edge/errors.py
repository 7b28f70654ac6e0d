"""Errors of the node runtime."""

from __future__ import annotations

from protocol.errors import MachikadoError


class EdgeError(MachikadoError):
    """Root of node runtime errors."""


class ConfigError(EdgeError):
    """A node config that cannot be used; the message names the key and the problem."""


class OutboxError(EdgeError):
    """The outbox cannot be opened or written."""


class OutboxFull(OutboxError):
    """The outbox is at its bound and its policy is to refuse new readings."""
