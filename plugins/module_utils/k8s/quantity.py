# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes resource quantities (``1Gi``, ``500M``, ``1.5e9``) as numbers of
bytes."""

from __future__ import annotations

import math
import re
import typing as t
from fractions import Fraction

from ..errors import RecoveryError

SUFFIXES: t.Mapping[str, t.Union[int, Fraction]] = {
    "": 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "m": Fraction(1, 1000),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<exponent>[eE][+-]?[0-9]+)|(?P<suffix>[KMGTPE]i|[mkMGTPE])?)$"
)


def to_bytes(text: str, where: str = "quantity") -> int:
    """The quantity in bytes, rounded up as Kubernetes rounds storage up."""
    found = QUANTITY.match(str(text).strip())
    if not found:
        raise RecoveryError(
            "Invalid %s %r: not a Kubernetes quantity (for example 1Gi or 500M)"
            % (where, text),
            resource=where,
            reason="invalid quantity",
        )
    number = Fraction(found.group("number"))
    if found.group("exponent"):
        number *= Fraction(10) ** int(found.group("exponent")[1:])
    else:
        number *= SUFFIXES[found.group("suffix") or ""]
    return math.ceil(number)
