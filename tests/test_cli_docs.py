"""docs/cli.md against the real command line: the reference is the --help text, the exit codes are the
ones the code returns, and every command the issue promised exists."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from test_cli import SCRIPT

from schemasync_backup.cli import context, parser, reference

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
PROMISED = [
    "backup create", "backup list", "backup info", "backup stats", "backup validate", "backup validate-all",
    "backup restore-test", "backup integrity-check", "backup recalculate-checksum", "backup partial-recovery",
    "backup recovery-scan",
    "backup delete", "backup export", "backup import", "backup move", "backup test-encryption",
    "backup test-connection", "backup validate-config", "backup health-check", "backup report",
    "backup cleanup", "backup storage-usage", "backup storage-health", "backup storage-optimize",
    "rollback list", "rollback plan", "rollback execute", "rollback validate", "rollback compare",
    "rollback recovery-info", "rollback manual-steps", "schema compare", "test-connection",
]


def test_the_reference_in_docs_is_the_help_text() -> None:
    document = DOCS.read_text()
    expected = reference.replace_generated(document, reference.BEGIN_MARK, reference.END_MARK,
                                         reference.reference_markdown())
    assert document == expected, "docs/cli.md is stale: run `python -m schemasync_backup.cli.main --update-docs`"


@pytest.mark.parametrize("command", [[], ["rollback", "execute"]], ids=["top", "rollback-execute"])
def test_the_installed_script_prints_what_the_docs_show(command: list[str]) -> None:
    env = {**os.environ, "COLUMNS": str(context.HELP_WIDTH + 2)}
    done = subprocess.run([str(SCRIPT), *command, "--help"], capture_output=True, text=True, env=env, check=True,
                          timeout=120)
    title = " ".join(["mysql-schema-sync", *command])
    section = re.search(rf"### `{re.escape(title)}`\n\n```text\n(.*?)\n```", DOCS.read_text(), re.S)
    assert section is not None, f"no section for {title} in docs/cli.md"
    assert done.stdout.rstrip() == section.group(1)


def test_every_promised_command_exists_with_its_options() -> None:
    commands = {name.removeprefix("mysql-schema-sync "): text for name, text in reference.help_texts()}
    for command in PROMISED:
        assert command in commands, command
        assert "--format {table,json}" in commands[command]
    for command, option in [("backup create", "--tag KEY=VALUE"), ("backup list", "--created-after TIME"),
                            ("backup export", "--output PATH"), ("backup import", "--file PATH"),
                            ("backup move", "--destination URL"), ("rollback plan", "--show-sql"),
                            ("rollback execute", "--disable-fk-checks"), ("rollback execute", "--parallel [N]"),
                            ("backup restore-test", "--scratch-dsn DSN"), ("schema compare", "--backup-id ID")]:
        assert option in commands[command], (command, option)


def test_exit_codes_documented_match_the_code() -> None:
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", DOCS.read_text(), re.M))
    assert {int(code) for code in rows} == {int(code) for code in context.ExitCode}
    epilog = {int(code) for code in re.findall(r"^  (\d+) ", parser._EPILOG, re.M)}
    assert epilog == {int(code) for code in context.ExitCode}
