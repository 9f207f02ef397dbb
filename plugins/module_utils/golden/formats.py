# Copyright: ragops.recovery contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every report the collection writes shares: a JUnit XML document with the counts
its consumers read, and text that is safe in a Markdown table cell. Standard library only, so that a module
writing a report imports nothing else for it."""

from __future__ import annotations

import xml.etree.ElementTree as ET


def count_cases(root: ET.Element, duration: float) -> None:
    """Fill in the counts that JUnit consumers read from each suite and from the
    root."""
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.find("failure") is not None),
            "errors": sum(1 for c in cases if c.find("error") is not None),
            "time": sum(float(c.get("time") or 0) for c in cases),
        }
        for key, value in counts.items():
            totals[key] += value
            suite.set(key, "%.3f" % value if key == "time" else str(value))
        suite.set("skipped", "0")
    totals["time"] = duration
    for key, value in totals.items():
        root.set(key, "%.3f" % value if key == "time" else str(int(value)))


def junit_text(root: ET.Element, duration: float) -> str:
    """The JUnit XML document of ``root`` (a ``testsuites`` element), its counts filled
    in and ``duration`` as its time."""
    count_cases(root, duration)
    ET.indent(root)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + ET.tostring(root, encoding="unicode")
        + "\n"
    )


def table_cell(text: str) -> str:
    """Table-safe text: a pipe or a line break would end the cell or the row."""
    return " ".join(str(text).split()).replace("|", "\\|")
