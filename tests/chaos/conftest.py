"""Print the chaos test's counts after the results (see ``tests.chaos.summary``)."""

from __future__ import annotations

from typing import Any

from tests.chaos.summary import print_summary


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_summary(terminalreporter)
