"""Exceptions of the detectors package."""

from __future__ import annotations


class DetectorError(Exception):
    """A detector could not be built or used. Not retriable: fix the configuration."""

    retriable = False


class UnknownDetectorError(DetectorError, KeyError):
    """No detector is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
