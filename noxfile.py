"""Developer sessions: tests, lint, typing, docs, bench."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against a throwaway MariaDB (needs mariadbd on PATH or in /usr/sbin)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over everything."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on src/, and the layout's import contracts."""
    session.install("-e", ".", "mypy", "import-linter")
    session.run("mypy")
    session.run("lint-imports")


@nox.session
def docs(session: nox.Session) -> None:
    """The docs site (mkdocs.yml) into site/, warnings as errors, as tests/test_docs_site.py builds it."""
    session.install("mkdocs>=1.6")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Capture speed against mysqldump, as ratios (benchmarks/README.md)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/bench_capture.py", *session.posargs)
