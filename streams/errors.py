"""Exceptions of the streams package. Each says whether retrying can help."""

from __future__ import annotations


class PynomalyError(Exception):
    """Base class: every error names what was wrong and how to fix it."""

    retriable: bool = False


class SettingsError(PynomalyError):
    """A setting has an invalid value; start-up stops."""


class BrokerError(PynomalyError):
    """The embedded broker could not be started or reached."""

    retriable = True
