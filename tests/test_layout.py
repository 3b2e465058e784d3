"""The tests mirror the source tree, so a package's tests are found where the package is.

Tests of a package of ``smsgateway`` (``messages/``) live in ``tests/messages/``; tests
of a top-level module (``encoding.py``) are ``tests/test_encoding.py``. Only the tests
listed below, which exercise the whole service rather than one part, stand apart.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src" / "smsgateway"

# Directories of tests that cut across packages and mirror none.
CROSS_CUTTING_DIRS = frozenset(
    {
        "chaos",  # the whole service, real processes, under injected faults
        "faults",  # database outages, shutdowns, lost answers, what reaches the logs
        "integration",  # `smsgateway serve` end to end against the fake OVHcloud API
    }
)

# Top-level test modules that name no module: they check the service as a whole.
CROSS_CUTTING_MODULES = frozenset(
    {
        "test_architecture",  # the source tree's import graph and sizes
        "test_layout",  # this file
        "test_schemathesis",  # every operation against openapi.yaml
        "test_empty_tokens",  # admin and callback routes, whoever guards them
        "test_unstorable_input",  # every endpoint that stores text
    }
)


def _test_dirs() -> list[Path]:
    return sorted(
        path
        for path in TESTS.rglob("*")
        if path.is_dir()
        and not any(part.startswith((".", "__")) for part in path.relative_to(TESTS).parts)
    )


def test_every_test_directory_mirrors_a_package() -> None:
    strays = []
    for directory in _test_dirs():
        relative = directory.relative_to(TESTS)
        if relative.parts[0] in CROSS_CUTTING_DIRS:
            continue
        if not (SRC / relative / "__init__.py").is_file():
            strays.append(relative.as_posix())
    assert strays == [], f"tests/ directories with no src/smsgateway package: {strays}"


def test_top_level_tests_name_a_top_level_module() -> None:
    modules = {path.stem for path in SRC.glob("*.py")}
    strays = sorted(
        path.name
        for path in TESTS.glob("test_*.py")
        if path.stem not in CROSS_CUTTING_MODULES and path.stem.removeprefix("test_") not in modules
    )
    assert strays == [], f"top-level tests of no top-level module: {strays}"


def test_every_test_directory_is_a_package() -> None:
    # Two packages' tests may then share a basename (test_cache.py) without clashing.
    missing = [
        d.relative_to(TESTS).as_posix() for d in _test_dirs() if not (d / "__init__.py").is_file()
    ]
    assert missing == []


def test_the_lists_name_what_exists() -> None:
    packages = {path.parent.name for path in SRC.glob("*/__init__.py")}
    assert {d.name for d in TESTS.iterdir() if d.is_dir()} >= CROSS_CUTTING_DIRS
    assert not CROSS_CUTTING_DIRS & packages  # a package's tests mirror it
    assert {path.stem for path in TESTS.glob("test_*.py")} >= CROSS_CUTTING_MODULES
