"""The documentation site: ``mkdocs build --strict`` passes (no broken link or anchor, no page outside the
nav), and every page under docs/ and the README names only what exists: each ``mysql-schema-sync`` command
shown parses with the real command line and each option named is one it has; each configuration example
is one the real loader accepts (pasted into a minimal file), or refuses as the page says; each dotted
configuration key is a key; each Python example compiles, and those of the first steps use only the
public API.
The plugin guide's examples work on a real store."""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import importlib
import io
import re
import shlex
import shutil
import subprocess
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from test_plugin_config import CIPHER_ENTRY_POINT, install

import schemasync_backup
from schemasync_backup import BackupStore, EncryptionKey, IntegrityError, Snapshot, Validator
from schemasync_backup.cli import config as cfg
from schemasync_backup.cli.parser import build_parser
from schemasync_backup.model.snapshot import ServerInfo
from schemasync_backup.plugins.manager import Registry, get_plugin_manager
from schemasync_backup.store.retention import RetentionPolicy

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PLUGINS = ROOT / "tests" / "plugins"


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


# --- reading the pages -----------------------------------------------------------------------------------

#: Every page a reader follows: the site's pages and the README.
PAGES = (*sorted(DOCS.glob("*.md")), ROOT / "README.md")
PAGE_IDS = [str(page.relative_to(ROOT)) for page in PAGES]
_MARKDOWN = MarkdownIt("commonmark")


def fences(markdown: str, *languages: str) -> Iterator[tuple[Token, Token | None]]:
    """Each fenced block in one of ``languages`` ("" for none), in page order, with the token before it."""
    found = _MARKDOWN.parse(markdown)
    for index, token in enumerate(found):
        if token.type == "fence" and (token.info.split() or [""])[0] in languages:
            yield token, found[index - 1] if index else None


def code_spans(markdown: str) -> Iterator[str]:
    """The text of every inline code span (in headings and tables too), a span wrapped over lines as one."""
    for token in _MARKDOWN.parse(markdown):
        for child in token.children or ():
            if child.type == "code_inline":
                yield " ".join(child.content.split())


def where(page: Path, block: Token) -> str:
    return f"{page.relative_to(ROOT)}:{(block.map or [0])[0] + 1}"


# --- every command shown exists --------------------------------------------------------------------------

PROGRAM = "mysql-schema-sync"
SHELL_FENCES = ("bash", "sh", "shell")
#: Blocks that show commands with what they print: a line is a command when it starts with the program
#: (after a ``$`` prompt); ``usage: mysql-schema-sync ...`` or a path naming it is output.
OUTPUT_FENCES = ("console", "text", "")
A_BACKUP_ID = "backup-20260115-143022-a1b2c3d4"
#: A value of the right form for each placeholder written as the reference's capitals (the parser's metavars).
METAVAR_EXAMPLES = {"ID": A_BACKUP_ID, "N": "4", "ROWS": "1000", "DURATION": "26h", "TIME": "24h",
                    "STATUS": "completed"}


def block_commands(markdown: str) -> list[str]:
    """Every ``mysql-schema-sync ...`` command the shell and output blocks of a page show."""
    commands: list[str] = []
    for block, _ in fences(markdown, *SHELL_FENCES, *OUTPUT_FENCES):
        shell = (block.info.split() or [""])[0] in SHELL_FENCES
        for line in block.content.splitlines():
            if shell:
                shown = line if PROGRAM in line else ""
            else:
                typed = re.sub(r"^\s*\$\s+", "", line)
                shown = typed if typed.startswith(f"{PROGRAM} ") else ""
            if shown:
                commands += invocations(re.sub(r"(^|\s)#.*$", "", shown))
    return commands


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The real parser, built once (building costs more than parsing), with abbreviations off: the
    command line takes ``--dry`` for ``--dry-run``, but a page writes every option's whole name."""
    parser = build_parser()
    parsers = [parser]
    while parsers:
        one = parsers.pop()
        one.allow_abbrev = False
        parsers += _subcommands(one).values()
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


#: The program's commands and their subcommands: prose names ``backup cleanup --dry-run`` without the
#: program's name.
COMMANDS = {name: frozenset(_subcommands(group)) for name, group in _subcommands(_parser()).items()}


def inline_commands(markdown: str) -> list[str]:
    """Every inline code span of a page that is a command line: it starts with the program, or with one of
    its commands and then a subcommand or an option (``rollback step 7 failed`` is a message); shell
    redirections and ``...`` left out."""
    commands = []
    for span in code_spans(markdown):
        first, second, *_ = [*span.split(), ""]
        named = first in COMMANDS and (second in COMMANDS[first] or second.startswith("-"))
        line = f"{PROGRAM} {span}" if named else span
        if line.startswith(f"{PROGRAM} "):
            commands += [command.replace(" ...", "") for command in invocations(line)]
    return commands


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


def _parser_says(words: list[str]) -> str | None:
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            _parser().parse_args(words)
    except SystemExit as exc:
        if exc.code == 0 and {"--help", "-h", "--version"} & set(words):
            return None
        return errors.getvalue().strip() or f"exit {exc.code}"
    return None


_MISSING = re.compile(r"Error: the following arguments are required: (.+?) \(see ")


def parse_problem(command: str, *, naming: bool = False) -> str | None:
    """What the real parser says about ``command`` (None when it is accepted).

    ``naming``: prose that names a command (`mysql-schema-sync backup info`, a group) without the options
    it requires; those are filled in, and every word that is there must still be accepted.
    """
    words = [METAVAR_EXAMPLES.get(word, word) for word in shlex.split(command)[1:]]
    if not words:
        return None  # the program's bare name, as prose names it
    problem = _parser_says(words)
    if naming and problem and f"argument {words[-1]}: expected one argument" in problem:
        words.append("placeholder")  # an option named without its value, `backup create --data`
        problem = _parser_says(words)
    missing = _MISSING.match(problem or "")
    if not naming or missing is None:
        return problem
    needed = missing.group(1).split(", ")
    if not all(name.startswith("--") for name in needed):  # a group named without its subcommand
        return problem if any(word.startswith("-") for word in words) else None
    return _parser_says(words + [word for name in needed
                                 for word in (name, A_BACKUP_ID if name == "--backup-id" else "placeholder")])


def test_the_command_check_refuses_what_does_not_exist() -> None:
    assert parse_problem("mysql-schema-sync backup validate --backup-id backup-20260115-143022-a1b2c3d4") is None
    assert "invalid choice: 'frobnicate'" in (parse_problem("mysql-schema-sync backup frobnicate") or "")
    assert "--no-such-flag" in (parse_problem(
        "mysql-schema-sync rollback execute --backup-id backup-20260115-143022-a1b2c3d4 --no-such-flag") or "")
    assert "--backup-id" in (parse_problem("mysql-schema-sync backup info") or "")
    assert parse_problem("mysql-schema-sync backup list --limit N --created-after TIME --status STATUS") is None
    assert "--limit" in (parse_problem("mysql-schema-sync backup list --limit many") or "")
    assert "--dry" in (parse_problem("mysql-schema-sync backup cleanup --dry") or "")  # abbreviated
    # Prose may name a command without its required options, but not with an option it does not have.
    assert parse_problem("mysql-schema-sync backup export", naming=True) is None
    assert parse_problem("mysql-schema-sync rollback", naming=True) is None
    assert "--bogus" in (parse_problem("mysql-schema-sync backup info --bogus", naming=True) or "")
    assert "invalid choice" in (parse_problem("mysql-schema-sync backup infos", naming=True) or "")
    text = ("```bash\nBACKUP_ID=$(mysql-schema-sync backup list --limit 1 --format json | jq -r '.[0].id')\n"
            "top -p $(pgrep -f mysql-schema-sync)   # names it, does not run it\n"
            "mysql-schema-sync rollback plan --backup-id <backup-id> --show-sql > rollback.sql  # a comment\n```\n"
            "Run `mysql-schema-sync backup list`, not `mysql-schema-sync`,\n"
            "or `mysql-schema-sync backup\ninfo --backup-id <backup-id>`.\n"
            "```text\nusage: mysql-schema-sync backup [-h]\nstorage /var/backups/mysql-schema-sync is reachable\n"
            "mysql-schema-sync backup stats\n```\n"
            "- a list item:\n\n  ```console\n  $ mysql-schema-sync backup list --tag env=prod\n"
            "  mysql-schema-sync: output\n  ```\n")
    assert block_commands(text) == [
        "mysql-schema-sync backup list --limit 1 --format json",
        f"mysql-schema-sync rollback plan --backup-id {A_BACKUP_ID} --show-sql",
        "mysql-schema-sync backup stats",
        "mysql-schema-sync backup list --tag env=prod",
    ]
    assert inline_commands(text) == ["mysql-schema-sync backup list",
                                     f"mysql-schema-sync backup info --backup-id {A_BACKUP_ID}"]


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_command_a_page_shows_exists(page: Path) -> None:
    markdown = page.read_text()
    blocks, spans = block_commands(markdown), inline_commands(markdown)
    problems = [f"{command}\n    {problem}" for command in blocks if (problem := parse_problem(command))]
    problems += [f"`{command}`\n    {problem}" for command in spans
                 if (problem := parse_problem(command, naming=True))]
    assert not problems, f"{page.relative_to(ROOT)} shows commands the command line refuses:\n" + "\n".join(problems)
    if page.name in ("index.md", "troubleshooting.md", "cli.md"):
        assert len(blocks) + len(spans) >= 10, blocks + spans  # the check saw the page's commands, not nothing


#: Options of other programs the pages name: restic's (docs/retention.md) and the mysql client's.
OTHER_PROGRAMS_OPTIONS = frozenset({"--keep-last", "--keep-within", "--abort-source-on-error", "--comments"})


def _options() -> frozenset[str]:
    found: set[str] = set()
    parsers = [_parser()]
    while parsers:
        one = parsers.pop()
        parsers += _subcommands(one).values()
        found.update(option for action in one._actions for option in action.option_strings)
    return frozenset(found)


def named_options(markdown: str) -> list[str]:
    """The option of every inline code span that is an option alone (``--dry-run``, ``--parallel N``)."""
    return [match.group(1) for span in code_spans(markdown)
            if (match := re.fullmatch(r"(--?[a-z][a-z-]*)(?:[ =].*)?", span))]


def test_the_option_check_refuses_what_no_command_has() -> None:
    text = "Use `--dry-run`, `--parallel N`, `--tag=env=prod`, `-q` and `--dry-runn`, not ` --` or `-1`."
    assert named_options(text) == ["--dry-run", "--parallel", "--tag", "-q", "--dry-runn"]
    assert {"--dry-run", "--parallel", "--tag", "-q", "--output-format"} <= _options()
    assert "--dry-runn" not in _options()


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_option_a_page_names_exists(page: Path) -> None:
    unknown = sorted(set(named_options(page.read_text())) - _options() - OTHER_PROGRAMS_OPTIONS)
    assert not unknown, f"{page.relative_to(ROOT)} names options no command has: {', '.join(unknown)}"


# --- every configuration example loads -------------------------------------------------------------------

#: The top-level keys of a configuration file: a YAML block with one of them is a configuration example.
CONFIG_SECTIONS = frozenset({*cfg.TOP_LEVEL_ALIASES, *(name for name, field in attrs.fields_dict(cfg.Config).items()
                                                       if not field.metadata.get("internal"))})
#: What an operator's file holds besides a snippet pasted into it: a database and a store.
MINIMAL_CONFIG: dict[str, Any] = {
    "database": {"host": "db.internal", "database": "shop"},
    "backup": {"storage": {"provider": "local", "local": {"base_path": "/var/backups/mysql-schema-sync"}}},
}
#: ``<!-- invalid: <a problem the loader reports> -->`` just before a block: an example of a refused file;
#: ``<!-- invalid without DB_PASSWORD: <problem> -->``: refused while those variables are not set.
_INVALID = re.compile(r"<!--\s*invalid(?:\s+without\s+([A-Z_][A-Z0-9_]*(?:\s*,\s*[A-Z_][A-Z0-9_]*)*))?:\s*(.*?)\s*-->",
                      re.S)


@attrs.frozen
class Refusal:
    """What the loader must say of an example marked invalid, and the variables unset when it is loaded."""

    problem: str
    unset: frozenset[str] = frozenset()


@attrs.frozen
class _EveryVariableSet(Mapping[str, str]):
    """An environment where every ``${VAR}`` an example names is set, to a value of the form its key takes,
    but those in ``unset``."""

    unset: frozenset[str] = frozenset()

    def __getitem__(self, name: str) -> str:
        if name in self.unset:
            raise KeyError(name)
        if name.endswith("PORT"):
            return "3306"
        return "https://hooks.example.com/services/T0/B0/x" if name.endswith("URL") else "from-the-environment"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name not in self.unset

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def config_examples(markdown: str) -> Iterator[tuple[Token, Refusal | None]]:
    """Each YAML block that is a configuration (or broken YAML), with the problem it is marked to show."""
    for block, before in fences(markdown, "yaml", "yml"):
        try:
            document = yaml.safe_load(block.content)
        except yaml.YAMLError:
            document = dict.fromkeys(CONFIG_SECTIONS)  # the loader says what is wrong with it
        if not isinstance(document, dict) or not CONFIG_SECTIONS & set(map(str, document)):
            continue
        marked = _INVALID.fullmatch(before.content.strip()) if before is not None and before.type == "html_block" \
            else None
        if marked is None:
            yield block, None
        else:
            unset = frozenset(name.strip() for name in (marked.group(1) or "").split(",") if name.strip())
            yield block, Refusal(" ".join(marked.group(2).split()), unset)


def pasted(snippet: dict[str, Any]) -> dict[str, Any]:
    """``snippet`` pasted into a minimal configuration: its sections win, the database and store it leaves out
    come from MINIMAL_CONFIG (a snippet with a DSN keeps its database alone)."""
    document = dict(snippet)
    database = snippet.get("database")
    if database is None or (isinstance(database, dict) and "dsn" not in database):
        document["database"] = {**MINIMAL_CONFIG["database"], **(database or {})}
    backup = snippet.get("backup")
    has_storage = "storage" in snippet or (isinstance(backup, dict) and "storage" in backup)
    if not has_storage and (backup is None or isinstance(backup, dict)):
        document["backup"] = {**MINIMAL_CONFIG["backup"], **(backup or {})}
    return document


def config_problems(text: str, unset: frozenset[str] = frozenset()) -> list[str]:
    """What the real loader says about ``text`` pasted into a minimal configuration (empty: accepted)."""
    environ = _EveryVariableSet(unset)
    try:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError:
            cfg.parse_config(text, environ=environ)  # raises, saying where the YAML breaks
            raise
        cfg.from_mapping(pasted(document), environ=environ)
    except cfg.ConfigError as exc:
        return exc.problems
    return []


def example_problem(text: str, refused: Refusal | None) -> str | None:
    """None when the loader accepts an example, or refuses one marked invalid with the problem it shows."""
    problems = config_problems(text, refused.unset if refused else frozenset())
    if refused is None:
        return "refused: " + "; ".join(problems) if problems else None
    if any(refused.problem in problem for problem in problems):
        return None
    return f"marked invalid ({refused.problem}) but " + ("refused: " + "; ".join(problems) if problems else "accepted")


@pytest.fixture
def example_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example plugins of docs/plugins.md installed, as the examples that name them assume: the codec
    (installed with the package, scripts/bootstrap.sh), the cipher, and the ``examplefs`` protocol."""
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(install(site, "example_cipher", CIPHER_ENTRY_POINT)))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(PLUGINS / "example_storage" / "src"))
    storage = importlib.import_module("schemasync_example_storage")
    monkeypatch.setitem(importlib.import_module("fsspec.registry")._registry, "examplefs", storage.ExampleFileSystem)


def test_the_configuration_check_refuses_what_the_loader_refuses(example_plugins: None) -> None:
    text = ("```yaml\nstorage:\n  s3:\n    bukcet: x\n```\n\n<!-- invalid: backup.compression.algorithm: unknown\n"
            "compression codec 'bzip2' -->\n```yaml\ncompression:\n  algorithm: bzip2\n```\n"
            "```yaml\nsite_name: not a configuration\n```\n```yaml\nbackup: [oops\n```\n")
    found = list(config_examples(text))
    assert [marked for _, marked in found] == [
        None, Refusal("backup.compression.algorithm: unknown compression codec 'bzip2'"), None]
    assert "backup.storage.s3.bukcet: unknown key (did you mean 'bucket'?)" in (example_problem(found[0][0].content,
                                                                                                None) or "")
    assert example_problem(found[1][0].content, found[1][1]) is None
    assert "not valid YAML" in (example_problem(found[2][0].content, None) or "")
    assert "but accepted" in (example_problem("compression:\n  algorithm: lz4\n", Refusal("unknown compression codec"))
                              or "")
    assert "but refused" in (example_problem("compression:\n  algorithm: bzip2\n", Refusal("unknown key")) or "")
    unset = '<!-- invalid without DB_PASSWORD, OTHER: environment variable DB_PASSWORD is not set -->\n' \
            '```yaml\ndatabase:\n  password: ${DB_PASSWORD}\n```\n'
    [(block, refused)] = config_examples(unset)
    assert refused == Refusal("environment variable DB_PASSWORD is not set", frozenset({"DB_PASSWORD", "OTHER"}))
    assert example_problem(block.content, refused) is None
    assert example_problem(block.content, None) is None  # set, it is accepted
    assert "but accepted" in (example_problem(block.content, attrs.evolve(refused, unset=frozenset({"OTHER"}))) or "")
    # Pasted as an operator would: the snippet's sections win, a DSN is not mixed with host keys.
    assert example_problem("database:\n  dsn: mysql://u:${DB_PASSWORD}@db:3306/app\n", None) is None
    assert example_problem("storage:\n  provider: s3\n  s3:\n    bucket: b\n", None) is None
    assert "port" in (example_problem("database:\n  port: 70000\n", None) or "")
    assert example_problem("encryption:\n  algorithm: chacha20-poly1305\nstorage:\n  url: examplefs://x\n",
                           None) is None


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_configuration_example_is_one_the_loader_accepts(page: Path, example_plugins: None) -> None:
    problems = [f"{where(page, block)}: {problem}" for block, refused in config_examples(page.read_text())
                if (problem := example_problem(block.content, refused))]
    assert not problems, "configuration examples the loader does not take as shown:\n" + "\n".join(problems)


# --- every dotted key written is a key --------------------------------------------------------------------

_DOTTED_KEY = re.compile(rf"((?:{'|'.join(sorted(CONFIG_SECTIONS))})(?:\.[a-z_][a-z0-9_]*)+)(?:\s*[:=].*)?")
#: Dotted names that start like a key but are the events notifiers receive (docs/plugins.md).
EVENTS = frozenset({*cfg.NOTIFICATION_EVENTS, "retention.applied"})
#: The keys of ``backup.retention``: the policy's fields, and those the command line reads itself.
RETENTION_KEYS = frozenset({*attrs.fields_dict(RetentionPolicy), *cfg._CLI_RETENTION_KEYS})


def written_keys(markdown: str) -> list[str]:
    """Every ``backup.storage.s3.bucket``-style key an inline code span names (``key: value`` too)."""
    return [match.group(1) for span in code_spans(markdown)
            if (match := _DOTTED_KEY.fullmatch(span)) and match.group(1) not in EVENTS]


def is_config_key(path: str) -> bool:
    """Whether the configuration accepts the dotted key ``path`` (a section's top-level alias too)."""
    names = path.split(".")
    if names[0] in cfg.TOP_LEVEL_ALIASES:
        names = ["backup", *names]
    section: Any = cfg.Config
    for index, name in enumerate(names):
        fields = {key: field for key, field in attrs.fields_dict(section).items() if not field.metadata.get("internal")}
        if name not in fields:
            return False
        field, rest = fields[name], names[index + 1:]
        if field.metadata.get("kind") == "retention":
            if rest[:1] == ["databases"]:
                rest = rest[2:]  # a database's own policy: databases.<name>.<key>
            return len(rest) <= 1 and set(rest) <= RETENTION_KEYS
        if typing.get_origin(field.type) is dict:
            return True  # options, headers: names of the caller's choice
        if not attrs.has(field.type):
            return not rest
        section = field.type
    return True


def test_the_key_check_refuses_what_the_configuration_does_not_have() -> None:
    assert is_config_key("backup.storage.s3.multipart_chunksize") and is_config_key("storage.s3.bucket")
    assert is_config_key("backup.retention.keep_daily") and is_config_key("retention.apply_on_create")
    assert is_config_key("backup.retention.databases.shop.max_backups") and is_config_key("database.dsn")
    assert is_config_key("backup.notifications.headers.Authorization") and is_config_key("backup.storage")
    for wrong in ("backup.storage.s3.bukcet", "backup.retention.keep_dayly", "backup.retention.max_backups.x",
                  "database.host.name", "backup.storage.sftp.host", "backup.source", "storage.s3.bucket.name"):
        assert not is_config_key(wrong), wrong
    text = ("Set `backup.storage.s3.bukcet`, `logging.level: debug` and `retention.max_age=7d`; "
            "events `backup.created` and `retention.applied`; `retention.RetentionPolicyError`.")
    assert written_keys(text) == ["backup.storage.s3.bukcet", "logging.level", "retention.max_age"]


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_key_a_page_names_exists(page: Path) -> None:
    wrong = sorted({key for key in written_keys(page.read_text()) if not is_config_key(key)})
    assert not wrong, f"{page.relative_to(ROOT)} names configuration keys that do not exist: {', '.join(wrong)}"


# --- the Python examples use the public API --------------------------------------------------------------

#: The pages whose Python examples a reader copies to start with: they may use the public API only.
API_PAGES = (DOCS / "index.md", ROOT / "README.md")


def api_problems(source: str) -> list[str]:
    """What is wrong with a Python example: it does not compile, or names what the package does not export."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [f"does not compile: {exc}"]
    problems: list[str] = []
    imported: dict[str, object] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or (node.module or "").split(".")[0] != schemasync_backup.__name__:
            continue
        module = importlib.import_module(node.module or "")
        for alias in node.names:
            if node.module == schemasync_backup.__name__ and alias.name not in schemasync_backup.__all__:
                problems.append(f"{alias.name} is not in schemasync_backup.__all__")
            elif alias.name.startswith("_") or not hasattr(module, alias.name):
                problems.append(f"{node.module} has no public {alias.name}")
            else:
                imported[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported \
                and not hasattr(imported[node.value.id], node.attr):
            problems.append(f"{node.value.id}.{node.attr} does not exist")
    return problems


def test_the_api_check_refuses_what_the_package_does_not_export() -> None:
    assert api_problems("from schemasync_backup import Snapshot, BackupStore\nBackupStore.open('x')\n") == []
    assert api_problems("from schemasync_backup import NoSuchThing\n") == [
        "NoSuchThing is not in schemasync_backup.__all__"]
    assert api_problems("from schemasync_backup import Snapshot as S\nS.capturee('dsn', 'db')\n") == [
        "S.capturee does not exist"]
    assert api_problems("from schemasync_backup.cli.config import _expand\n") == [
        "schemasync_backup.cli.config has no public _expand"]
    assert api_problems("store = BackupStore.open(\n")[0].startswith("does not compile")


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_python_example_compiles_and_the_first_steps_use_the_public_api(page: Path) -> None:
    problems = []
    for block, _ in fences(page.read_text(), "python", "py"):
        found = api_problems(block.content)
        if page not in API_PAGES:  # the plugin guide and the like show modules of their own
            found = [problem for problem in found if problem.startswith("does not compile")]
        problems += [f"{where(page, block)}: {problem}" for problem in found]
    assert not problems, "\n".join(problems)


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
