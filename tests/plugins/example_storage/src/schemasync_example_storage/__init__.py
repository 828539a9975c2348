"""A third-party storage provider, as a package would ship it: fsspec protocol ``examplefs``.

An in-memory filesystem of its own (not ``memory://``'s), known to fsspec only through the
``fsspec.specs`` entry point group.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fsspec.implementations.memory import MemoryFileSystem


class ExampleFileSystem(MemoryFileSystem):  # type: ignore[misc]
    protocol = "examplefs"
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return super()._strip_protocol(path.removeprefix("examplefs://") if isinstance(path, str) else path)
