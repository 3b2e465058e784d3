"""Counts the chaos and fault tests print at the end of the run.

A test calls ``record_summary(line)``; the ``pytest_terminal_summary`` hooks in
``tests/chaos/conftest.py`` and ``tests/faults/conftest.py`` print every line once,
under a "fault injection" heading, after the test results.
"""

from __future__ import annotations

from typing import Any

_LINES: list[str] = []
_PRINTED = False


def record_summary(line: str) -> None:
    _LINES.append(line)


def print_summary(terminalreporter: Any) -> None:
    global _PRINTED
    if _PRINTED or not _LINES:
        return
    _PRINTED = True
    terminalreporter.section("fault injection")
    for line in _LINES:
        terminalreporter.write_line(line)
