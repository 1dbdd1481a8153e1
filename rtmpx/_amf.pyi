"""Type stub of the compiled AMF codec (same API as rtmpx._amf_py)."""

from collections.abc import Iterable
from typing import Any

from ._amf_types import ClassRegistry

def dumps(value: Any, *, version: int = 0, max_depth: int = 64,
          registry: ClassRegistry | None = None) -> bytes: ...
def dumps_all(values: Iterable[Any], *, version: int = 0, max_depth: int = 64,
              registry: ClassRegistry | None = None) -> bytes: ...
def loads(data: bytes | bytearray | memoryview, *, version: int = 0, max_depth: int = 64,
          max_length: int = 16777216, max_values: int = 1000000, references: bool = True,
          registry: ClassRegistry | None = None) -> Any: ...
def loads_all(data: bytes | bytearray | memoryview, *, version: int = 0, max_depth: int = 64,
              max_length: int = 16777216, max_values: int = 1000000, references: bool = True,
              registry: ClassRegistry | None = None) -> list[Any]: ...
