"""Parse checks of a backup's DDL: what sqlglot can judge, its verdicts, and the cache that keeps them.

A parse check is a warning, never damage: checksums prove a backup intact, and sqlglot not reading a
statement says only that sqlglot lacks (or has a bug in) a grammar. So only what a parser can judge
is judged:

* tables and views; a table's partition clause is cut off first (MariaDB prints it on a line of its
  own, `` PARTITION BY``, and sqlglot has no grammar for it), the definition before it is judged;
* not triggers, procedures, functions or events: sqlglot has no grammar for their bodies;
* not a statement sqlglot reads only as an opaque Command (system versioning, a check option, ...).

What is not judged is counted as such, without a warning.

Verdicts are kept across backups in one small file in the user's cache directory
(``$XDG_CACHE_HOME/schemasync_backup/parse-checks.json``, else ``~/.cache/...``), keyed by the
sha256 of the judged text, and valid only for the parser version and rules that made them. Not in
the store, because a cache there would need write access to a store that only validation reads
(and a read-only store must validate as fast), and because the store of an encrypted backup must not
carry hashes of single statements, which would let anyone confirm a guessed definition. The file
holds no statement text and only the position part of a parser message. A file that cannot be read,
does not parse, or was written by another parser version is ignored; one that cannot be written is
not kept. Either way validation gives the same result, only slower.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import attrs

from schemasync_backup.sql.quoting import parse_problem, parser_version, quote_identifier

_log = logging.getLogger(__name__)

#: The kinds whose statements sqlglot has a grammar for.
JUDGED_KINDS = frozenset({"table", "view"})
#: Bumped whenever what is judged, or how, changes: verdicts made under other rules are not reused.
RULES_VERSION = 1
#: The verdicts a cache file keeps at most (about 100 bytes each); the least recently used go first.
MAX_ENTRIES = 200_000
_FORMAT = "schemasync-parse-checks"
_PARTITION_CLAUSE = re.compile(r"\n ?PARTITION BY ")
#: What of a parser message may be kept and shown: quoted text and token dumps could hold a
#: definition's literals (a FEDERATED table's CONNECTION string holds a password).
_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`]|``)*`|\"(?:[^\"\\]|\\.)*\"")

#: A verdict: whether the parser judged the text, and why it failed (None: it parsed).
Verdict = tuple[bool, str | None]


def judged_text(kind: str, statement: str) -> str | None:
    """The part of ``statement`` a parser can judge, or None when there is none."""
    if kind not in JUDGED_KINDS:
        return None
    return _PARTITION_CLAUSE.split(statement, maxsplit=1)[0] if kind == "table" else statement


def _scrubbed(problem: str) -> str:
    return _LITERAL.sub("'…'", problem.split("<Token", 1)[0]).strip()


def default_cache_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where verdicts are kept by default (XDG: ``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "schemasync_backup" / "parse-checks.json"


@attrs.define
class ParseCache:
    """Parse verdicts by the sha256 of the judged text, loaded once and saved after each backup's checks.

    ``path`` None keeps them in memory only (for as long as this object lives).
    """

    path: Path | None = attrs.field(factory=default_cache_path)
    _verdicts: dict[str, Verdict] | None = attrs.field(default=None, init=False, repr=False)
    _changed: bool = attrs.field(default=False, init=False, repr=False)

    def _loaded(self) -> dict[str, Verdict]:
        if self._verdicts is None:
            self._verdicts = self._read()
        return self._verdicts

    def _read(self) -> dict[str, Verdict]:
        if self.path is None:
            return {}
        try:
            document = json.loads(self.path.read_bytes())
            if document.get("format") != _FORMAT or document.get("parser") != parser_version() \
                    or document.get("rules") != RULES_VERSION:
                return {}
            return {str(key): (bool(judged), None if problem is None else str(problem))
                    for key, (judged, problem) in document["verdicts"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            _log.debug("parse-check cache %s ignored: %s", self.path, exc)
            return {}

    def get(self, key: str) -> Verdict | None:
        verdicts = self._loaded()
        found = verdicts.pop(key, None)
        if found is not None:
            verdicts[key] = found  # now the most recently used
        return found

    def put(self, key: str, verdict: Verdict) -> None:
        verdicts = self._loaded()
        verdicts[key] = verdict
        self._changed = True
        while len(verdicts) > MAX_ENTRIES:
            del verdicts[next(iter(verdicts))]

    def save(self) -> None:
        """Write the verdicts when new ones were made; a cache that cannot be written is not kept."""
        if self.path is None or not self._changed or self._verdicts is None:
            return
        document = {"format": _FORMAT, "parser": parser_version(), "rules": RULES_VERSION,
                    "verdicts": {key: list(verdict) for key, verdict in self._verdicts.items()}}
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, staging = tempfile.mkstemp(dir=self.path.parent, prefix=".parse-checks-")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as sink:
                    json.dump(document, sink, separators=(",", ":"))
                os.replace(staging, self.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(staging)
        except OSError as exc:
            _log.debug("parse-check cache %s not written: %s", self.path, exc)
            return
        self._changed = False


@attrs.frozen
class ParseFailure:
    """A statement sqlglot judged and could not parse."""

    kind: str
    name: str
    problem: str

    def __str__(self) -> str:
        return f"sqlglot cannot parse the DDL of {self.kind} {quote_identifier(self.name)}: {self.problem}"


@attrs.frozen
class ParseReport:
    """The parse checks of one snapshot, counted."""

    #: Statements judged (parsed now, or a verdict reused from the cache).
    checked: int = 0
    #: Of those, the verdicts reused from the cache.
    cached: int = 0
    #: Statements no parser can judge (trigger, routine and event bodies, opaque commands).
    not_judged: int = 0
    failures: tuple[ParseFailure, ...] = ()


def check_statements(statements: Iterable[tuple[str, str, str]], cache: ParseCache, *,
                     progress: Callable[[int], None] | None = None) -> ParseReport:
    """Judge each ``(kind, name, statement)`` that a parser can judge, reusing cached verdicts.

    ``progress`` is told how many statements have been looked at, after each one.
    """
    checked = cached = not_judged = 0
    failures = []
    for done, (kind, name, statement) in enumerate(statements, start=1):
        text = judged_text(kind, statement)
        judged, problem, reused = (False, None, False) if text is None else _verdict(text, cache)
        if judged:
            checked += 1
            cached += reused
            if problem is not None:
                failures.append(ParseFailure(kind, name, problem))
        else:
            not_judged += 1
        if progress is not None:
            progress(done)
    cache.save()
    return ParseReport(checked, cached, not_judged, tuple(failures))


def _verdict(text: str, cache: ParseCache) -> tuple[bool, str | None, bool]:
    """The verdict on ``text`` and whether it came from the cache."""
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    found = cache.get(key)
    if found is not None:
        return *found, True
    judged, problem = parse_problem(text)
    verdict = (judged, None if problem is None else _scrubbed(problem))
    cache.put(key, verdict)
    return *verdict, False
