"""Stream detectors: the Detector protocol, the registry and one module per algorithm."""

from detectors.protocol import Detector, Verdict
from detectors.registry import create, names, register

__all__ = ["Detector", "Verdict", "create", "names", "register"]
