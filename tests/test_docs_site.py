"""The documentation site: ``mkdocs build --strict`` passes (no broken link or anchor, no page outside the
nav), every ``mysql-schema-sync`` command the pages show parses with the real command line, and the plugin
guide's examples work on a real store."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from schemasync_backup import BackupStore, EncryptionKey, IntegrityError, Snapshot, Validator
from schemasync_backup.cli.parser import build_parser
from schemasync_backup.model.snapshot import ServerInfo
from schemasync_backup.plugins.manager import Registry, get_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: The pages whose commands a reader types as shown: none may name a command or option that does not exist.
COMMAND_PAGES = ("index.md", "concepts.md", "troubleshooting.md", "plugins.md")
PROGRAM = "mysql-schema-sync"
SHELL_FENCES = {"bash", "sh", "shell", "console"}
A_BACKUP_ID = "backup-20260115-143022-a1b2c3d4"


# --- the site builds, strictly ---------------------------------------------------------------------------


def build_site(site: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, timeout=300, check=False,
                          cwd=ROOT)


def config_for(docs: Path, folder: Path) -> Path:
    """mkdocs.yml with its pages taken from ``docs`` (a copy to change)."""
    settings = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    settings["docs_dir"] = str(docs)
    path = folder / "mkdocs.yml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    done = build_site(tmp_path / "site")
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}{done.stderr}"
    for page in ("index", "concepts", "plugins", "troubleshooting", "cli"):
        assert (tmp_path / "site" / page / "index.html").is_file() or page == "index"
    assert (tmp_path / "site" / "index.html").is_file()


def test_a_broken_link_an_unknown_anchor_or_a_page_outside_the_nav_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    with (docs / "concepts.md").open("a") as page:
        page.write("\n[gone](no-such-page.md) and [nowhere](#no-such-heading)\n")
    (docs / "stray.md").write_text("# A page nobody put in the nav\n")
    done = build_site(tmp_path / "site", config_for(docs, tmp_path))
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "no-such-page.md" in output and "no-such-heading" in output and "stray.md" in output


def test_notebooks_under_docs_are_files_of_the_site_not_warnings(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    notebook = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'
    (docs / "notebooks").mkdir(exist_ok=True)
    (docs / "walkthrough.ipynb").write_text(notebook)
    (docs / "notebooks" / "walkthrough.ipynb").write_text(notebook)
    with (docs / "index.md").open("a") as page:
        page.write("\n[The walkthrough](walkthrough.ipynb), [again](notebooks/walkthrough.ipynb).\n")
    done = build_site(tmp_path / "site", config_for(docs, tmp_path))
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}{done.stderr}"
    assert (tmp_path / "site" / "walkthrough.ipynb").read_text() == notebook


# --- every command shown exists --------------------------------------------------------------------------


def shown_commands(markdown: str) -> list[str]:
    """Every ``mysql-schema-sync ...`` command line in the shell blocks and inline code of a page."""
    commands: list[str] = []
    prose: list[str] = []
    fence: str | None = None
    for line in markdown.splitlines():
        opening = re.match(r"\s*```(\w*)", line)
        if opening:
            fence = None if fence is not None else opening.group(1) or "text"
            prose.append("")  # a code block ends a paragraph
        elif fence is None:
            prose.append(line)
        elif fence in SHELL_FENCES and PROGRAM in line:
            commands += invocations(re.sub(r"(^|\s)#.*$", "", line))
    # Inline code may wrap onto the next line of its paragraph.
    spans = (" ".join(span.split()) for span in re.findall(r"`([^`]+)`", "\n".join(prose)))
    return commands + [placeholders(span) for span in spans if span.startswith(f"{PROGRAM} ")]


_OPERATORS = re.compile(r"^[|&;()<>]+$")


def invocations(line: str) -> list[str]:
    """The commands in one shell line that run the program (not those that merely name it, like pgrep)."""
    lexer = shlex.shlex(placeholders(line), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    found = []
    for index, token in enumerate(tokens):
        at_command = index == 0 or bool(_OPERATORS.match(tokens[index - 1]))
        if token != PROGRAM or not at_command:
            continue
        words = []
        for word in tokens[index + 1:]:
            if _OPERATORS.match(word):
                break
            words.append(word)
        found.append(shlex.join([PROGRAM, *words]))
    return found


def placeholders(text: str) -> str:
    """``<backup-id>`` and ``$BACKUP_ID`` as a well-formed id; any other ``<thing>`` or ``$VAR`` as a word."""
    text = re.sub(r"<backup-id>|\"?\$\{?BACKUP_ID\}?\"?", A_BACKUP_ID, text)
    text = re.sub(r"<[\w.-]+>", "placeholder", text)
    return re.sub(r"\$\{?\w+\}?", "value", text)


def parse_problem(command: str) -> str | None:
    """What the real parser says about ``command`` (None when it is accepted)."""
    words = shlex.split(command)[1:]
    if not words:
        return None  # the program's bare name, as prose names it
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(words)
    except SystemExit as exc:
        if exc.code == 0 and {"--help", "-h", "--version"} & set(words):
            return None
        return errors.getvalue().strip() or f"exit {exc.code}"
    return None


def test_the_command_check_refuses_what_does_not_exist() -> None:
    assert parse_problem("mysql-schema-sync backup validate --backup-id backup-20260115-143022-a1b2c3d4") is None
    assert "invalid choice: 'frobnicate'" in (parse_problem("mysql-schema-sync backup frobnicate") or "")
    assert "--no-such-flag" in (parse_problem(
        "mysql-schema-sync rollback execute --backup-id backup-20260115-143022-a1b2c3d4 --no-such-flag") or "")
    assert "--backup-id" in (parse_problem("mysql-schema-sync backup info") or "")
    text = ("```bash\nBACKUP_ID=$(mysql-schema-sync backup list --limit 1 --format json | jq -r '.[0].id')\n"
            "top -p $(pgrep -f mysql-schema-sync)   # names it, does not run it\n"
            "mysql-schema-sync rollback plan --backup-id <backup-id> --show-sql > rollback.sql  # a comment\n```\n"
            "Run `mysql-schema-sync backup list`, not `mysql-schema-sync`,\n"
            "or `mysql-schema-sync backup\ninfo --backup-id <backup-id>`.\n"
            "```text\nmysql-schema-sync output is not a command\n```\n")
    assert shown_commands(text) == [
        "mysql-schema-sync backup list --limit 1 --format json",
        f"mysql-schema-sync rollback plan --backup-id {A_BACKUP_ID} --show-sql",
        "mysql-schema-sync backup list",
        f"mysql-schema-sync backup info --backup-id {A_BACKUP_ID}",
    ]


@pytest.mark.parametrize("page", COMMAND_PAGES)
def test_every_command_a_page_shows_exists(page: str) -> None:
    commands = shown_commands((DOCS / page).read_text())
    problems = [f"{command}\n    {problem}" for command in commands if (problem := parse_problem(command))]
    assert not problems, f"docs/{page} shows commands the command line refuses:\n" + "\n".join(problems)
    if page in ("index.md", "troubleshooting.md"):
        assert len(commands) >= 10, commands  # the check saw the page's commands, not nothing


# --- the plugin guide's examples ------------------------------------------------------------------------


def guide_block(marker: str) -> str:
    """The python block of docs/plugins.md that holds ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "plugins.md").read_text(), re.S)
    [block] = [block for block in blocks if marker in block]
    return block


def as_module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"docs/plugins.md ({name})", "exec"), module.__dict__)
    return module


PLUGINS = ROOT / "tests" / "plugins"


@pytest.mark.parametrize(("marker", "shipped"), [
    ("class XorZlibCodec", "example_codec/src/schemasync_example_codec/__init__.py"),
    ("class ChaChaPoly", "example_cipher/src/schemasync_example_cipher/__init__.py"),
    ("class ExampleFileSystem", "example_storage/src/schemasync_example_storage/__init__.py"),
], ids=["codec", "cipher", "storage"])
def test_the_guide_shows_the_example_plugins_as_they_are(marker: str, shipped: str) -> None:
    assert guide_block(marker) == (PLUGINS / shipped).read_text()


def test_the_guides_cipher_and_notifier_work_on_a_store(tmp_path: Path) -> None:
    cipher = as_module("guide_cipher", guide_block("class ChaChaPoly"))
    notifiers = as_module("guide_notifier", guide_block("class JsonLinesNotifier"))
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(cipher, name="chacha-plugin")
    events = tmp_path / "events.jsonl"
    manager.register(notifiers.JsonLinesNotifier(events, frozenset({"backup.created"})), name="jsonl-notifier")
    registry = Registry.from_manager(manager)
    assert registry.provider("cipher", "chacha20-poly1305") == "chacha-plugin"

    key = EncryptionKey.generate()
    store = BackupStore.open(str(tmp_path / "store"), encryption_keys=key, cipher="chacha20-poly1305",
                             registry=registry)
    snapshot = Snapshot("app", "utf8mb4", "utf8mb4_general_ci", ServerInfo("mariadb", "11.4", "", 0))
    info = store.save(snapshot)
    assert info.encryption == "chacha20-poly1305"
    assert Validator(store).validate(info.id).valid and store.snapshot(info.id) == snapshot
    assert '"event": "backup.created"' in events.read_text() and key.material.hex() not in events.read_text()

    # Authenticated: moved data (other associated data) fails with ValueError, which the store calls damage.
    codec = cipher.ChaChaPoly()
    sealed = codec.encrypt(key.material, b"frame", b"address:0:1")
    assert codec.decrypt(key.material, sealed, b"address:0:1") == b"frame"
    with pytest.raises(ValueError, match=r"^authentication failed$"):
        codec.decrypt(key.material, sealed, b"address:1:1")
    path = Path(store.files.object_path(store.manifest(info.id).snapshot_object))
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(IntegrityError):
        BackupStore.open(str(tmp_path / "store"), encryption_keys=key, registry=registry).snapshot(info.id)
