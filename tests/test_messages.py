"""Messages name what their reader can do: a library error may name a keyword argument (its reader wrote
the call), and the command line says the same in its own words, never a Python name.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import schemasync_backup
from schemasync_backup.cli.main import CLI_WORDING, cli_wording
from schemasync_backup.errors import ConcurrentCreateError, UnsealedBackupError

SOURCE = Path(schemasync_backup.__file__).parent
#: Python in a message: ``Validator.partial_recovery``, ``from_env('``, ``resume=False``, ``encryption_keys=``.
PYTHON = re.compile(r"\b(?:Validator|BackupStore|RollbackPlanner|Snapshot)\.[a-z_]+\b|\b[a-z_]+\(['\"]"
                    r"|\b[a-z_]+=(?:True|False|,|$| )")


def raised_messages() -> Iterator[tuple[str, str]]:
    """The literal text of every ``raise SomeError("...")`` in the package: (where, text)."""
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                for argument in node.exc.args:
                    for part in ast.walk(argument):
                        if isinstance(part, ast.Constant) and isinstance(part.value, str):
                            yield f"{path.relative_to(SOURCE)}:{node.lineno}", part.value


def test_the_scan_finds_the_messages() -> None:
    texts = [text for _, text in raised_messages()]
    assert len(texts) > 300 and any("pass allow_concurrent=True" in text for text in texts)


#: Messages about arguments the command line checks itself before it calls the library, and one that gives both
#: spellings itself ("target_database='x' (command line: --target-database x)").
LIBRARY_ONLY = ("data='tables'", "data='at-risk' needs migration=", "stale_after=", " is not one of 'none', 'all'",
                "name the target explicitly: target_database=")


@pytest.mark.parametrize("where, text", [(where, text) for where, text in raised_messages()
                                         if PYTHON.search(text) and not any(only in text for only in LIBRARY_ONLY)])
def test_python_in_a_library_message_has_cli_words(where: str, text: str) -> None:
    """Each Python name a message offers has its command-line wording, so `mysql-schema-sync` never shows it."""
    for found in PYTHON.finditer(text):
        assert any(found.group(0) in phrase for phrase in CLI_WORDING), (
            f"{where}: {found.group(0)!r} in {text!r} has no entry in cli.main.CLI_WORDING")


def test_the_cli_says_it_in_its_own_words() -> None:
    running = ConcurrentCreateError("another backup of shop is being created (pid 1); wait for it, or pass "
                                    "allow_concurrent=True", subject="shop")
    assert cli_wording(running.message).endswith("wait for it, or pass --force")
    unsealed = UnsealedBackupError("this encrypted store refuses it. If you trust it, open the store with "
                                   "accept_unsealed=True (config: backup.encryption.accept_unsealed: true)",
                                   subject="backup-x")
    assert "accept_unsealed=True" not in cli_wording(unsealed.message)
    assert "backup.encryption.accept_unsealed: true" in cli_wording(unsealed.message)
    for phrase, words in CLI_WORDING.items():
        assert not PYTHON.search(words), (phrase, words)
