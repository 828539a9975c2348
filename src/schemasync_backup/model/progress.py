"""How far a long piece of work is: the one record every progress callback of the library receives.

A create, a validation, a rollback's data restore, an export or import, a restore test, a rollback
validation's data check, a partial recovery and a recovery scan each call their ``progress=``
callback with a :class:`ProgressUpdate` as they go. ``stage`` says what ``done`` of ``total`` counts; within a stage
every count only grows, and the stage's last update has ``done == total`` (and ``bytes_done ==
bytes_total`` when the bytes are known in advance). A total that cannot be known before the end is 0.
Callbacks may be called from worker threads, one call at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs


@attrs.frozen
class ProgressUpdate:
    """``done`` of ``total`` in ``stage``, with the objects, bytes and rows handled so far.

    The stages: ``"objects"`` (schema objects captured of those listed), ``"data"`` (tables read of
    those a data backup holds; ``objects_done`` chunks stored, ``rows_done`` rows read, ``bytes_done``
    bytes of table data read), ``"writing"`` (frames written of a backup's schema objects, with their
    plaintext bytes), ``"rows"`` (chunks loaded by a rollback's data steps, ``rows_done`` rows
    restored, ``bytes_done`` of ``bytes_total`` bytes of table data loaded; a restore test's too); a
    validation's ``"frames"`` and ``"parse checks"`` (:mod:`.validate.validator`); ``"archiving"``
    and ``"importing"`` (objects of an archive, :mod:`.store.archive`); ``"statements"`` (a
    restore's DDL run); ``"comparing"`` (a data check's tables: ``objects_done`` chunks, ``rows_done``
    backed-up rows compared, :mod:`.rollback.data_check`); ``"salvage"`` (a partial recovery's frames
    read) and ``"backups"`` (a recovery scan's backups checked).
    """

    stage: str
    done: int
    total: int
    objects_done: int = 0
    objects_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    rows_done: int = 0


#: What a ``progress=`` callback is: called with each :class:`ProgressUpdate`.
ProgressCallback = Callable[[ProgressUpdate], None]
