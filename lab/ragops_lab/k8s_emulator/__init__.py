"""A local stand-in for the Kubernetes API server, for the lab and the tests.

Serves the subset of the core, apps, batch and coordination APIs the collection uses,
with discovery for kubectl and the dynamic client; see README.md for the control API.
"""

from .faults import FaultRule
from .server import EmulatorServer

__all__ = ["EmulatorServer", "FaultRule"]
