"""Pure-Python AMF0/AMF3 codec: the twin of the compiled :mod:`rtmpx._amf`.

Same API, same bytes, same values; plain readable Python.  It is the test
oracle for the compiled core and the baseline of its benchmarks.  Use
:mod:`rtmpx.amf`, which picks the compiled module unless the environment
sets ``RTMPX_PUREPYTHON=1``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ._amf_types import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_VALUES,
    DEFAULT_REGISTRY,
    MAX_DEPTH_LIMIT,
    MAX_VALUES_LIMIT,
    UNDEFINED,
    UNSUPPORTED,
    XML,
    ClassAlias,
    ClassRegistry,
    Dictionary,
    ECMAArray,
    MixedArray,
    TypedObject,
    Undefined,
    Unsupported,
    Vector,
    XMLDocument,
    datetime_to_ms,
    ms_to_datetime,
)
from .errors import AMFDecodeError, AMFEncodeError

__all__ = ["dumps", "dumps_all", "loads", "loads_all"]

_D = struct.Struct(">d")
_H = struct.Struct(">H")
_L = struct.Struct(">L")
_h = struct.Struct(">h")
_l = struct.Struct(">l")

# Types the codec handles itself: the registry is consulted for others only.
_NATIVE = frozenset({
    str, float, int, bool, type(None), dict, list, tuple, bytes, bytearray, memoryview,
    datetime, ECMAArray, TypedObject, XMLDocument, XML, Vector, Dictionary, MixedArray,
    Undefined, Unsupported,
})
_AMF3_ONLY = (bytes, bytearray, memoryview, XML, Vector, Dictionary, MixedArray)
_VECTOR_MARKERS = {"int": 0x0D, "uint": 0x0E, "double": 0x0F, "object": 0x10}
_INT_MIN, _INT_MAX = -0x10000000, 0x0FFFFFFF


def _check_args(version: int, max_depth: int) -> None:
    if version != 0 and version != 3:
        raise ValueError(f"AMF version must be 0 or 3, not {version!r}")
    if not 1 <= max_depth <= MAX_DEPTH_LIMIT:
        raise ValueError(f"max_depth must be 1..{MAX_DEPTH_LIMIT}, not {max_depth!r}")


def _check_budget(max_values: int, references: bool) -> int:
    """Validate the decode budget; the limit in effect (at most MAX_VALUES_LIMIT)."""
    if isinstance(max_values, bool) or not isinstance(max_values, int):
        raise TypeError(f"max_values must be an int, not {type(max_values).__name__!r}")
    if max_values < 1:
        raise ValueError(f"max_values must be at least 1, not {max_values!r}")
    if references is not True and references is not False:
        raise TypeError(f"references must be True or False, not {type(references).__name__!r}")
    return min(int(max_values), MAX_VALUES_LIMIT)


# --- encoding ------------------------------------------------------------

class _Encoder:
    def __init__(self, registry: ClassRegistry | None, max_depth: int) -> None:
        self.out = bytearray()
        self.registry = DEFAULT_REGISTRY if registry is None else registry
        self.max_depth = max_depth
        self.depth = 0
        self.keep: list[Any] = []  # objects whose id() is in a table stay alive
        self.refs0: dict[int, int] = {}
        self.count0 = 0
        self.new_amf3_context()

    def new_amf3_context(self) -> None:
        self.strings3: dict[str, int] = {}
        self.objects3: dict[int, int] = {}
        self.count3 = 0
        self.traits3: dict[tuple[Any, ...], int] = {}

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise AMFEncodeError(f"value nested deeper than max_depth={self.max_depth}")

    def alias_of(self, value: Any) -> ClassAlias | None:
        if type(value) in _NATIVE:
            return None
        return self.registry.by_type(type(value))

    # AMF0

    def write0(self, v: Any) -> None:
        out = self.out
        alias = self.alias_of(v)
        if alias is not None:
            if alias.externalizable:
                self.switch3(v)
            else:
                self.typed0(v, alias.alias, alias.to_dict(v))  # type: ignore[misc]
        elif v is None:
            out.append(0x05)
        elif v is UNDEFINED:
            out.append(0x06)
        elif v is UNSUPPORTED:
            out.append(0x0D)
        elif isinstance(v, bool):
            out += b"\x01\x01" if v else b"\x01\x00"
        elif isinstance(v, (int, float)):
            out.append(0x00)
            out += _D.pack(_to_double(v))
        elif isinstance(v, XMLDocument):
            data = _utf8(v)
            if len(data) > 0xFFFFFFFF:
                raise AMFEncodeError("XML document longer than 2**32-1 bytes")
            out.append(0x0F)
            out += _L.pack(len(data))
            out += data
        elif isinstance(v, XML):
            self.switch3(v)
        elif isinstance(v, str):
            data = _utf8(v)
            if len(data) <= 0xFFFF:
                out.append(0x02)
                out += _H.pack(len(data))
            elif len(data) <= 0xFFFFFFFF:
                out.append(0x0C)
                out += _L.pack(len(data))
            else:
                raise AMFEncodeError("string longer than 2**32-1 bytes")
            out += data
        elif isinstance(v, TypedObject):
            self.typed0(v, v.class_name, v)
        elif isinstance(v, ECMAArray):
            if self.ref0(v):
                return
            out.append(0x08)
            out += _L.pack(len(v))
            self.members0(v)
        elif isinstance(v, Dictionary):
            self.switch3(v)
        elif isinstance(v, dict):
            if self.ref0(v):
                return
            out.append(0x03)
            self.members0(v)
        elif isinstance(v, Vector):
            self.switch3(v)
        elif isinstance(v, (list, tuple)):
            if self.ref0(v):
                return
            out.append(0x0A)
            out += _L.pack(len(v))
            self.enter()
            for item in v:
                self.write0(item)
            self.depth -= 1
        elif isinstance(v, datetime):
            out.append(0x0B)
            out += _D.pack(datetime_to_ms(v))
            out += b"\x00\x00"
        elif isinstance(v, _AMF3_ONLY):
            self.switch3(v)
        else:
            raise AMFEncodeError(f"cannot encode {type(v).__name__!r} as AMF0")

    def ref0(self, v: Any) -> bool:
        """Write a reference if ``v`` was written before; else enter it in the table."""
        index = self.refs0.get(id(v))
        if index is not None:
            self.out.append(0x07)
            self.out += _H.pack(index)
            return True
        if self.count0 <= 0xFFFF:
            self.refs0[id(v)] = self.count0
            self.keep.append(v)
        self.count0 += 1
        return False

    def typed0(self, v: Any, class_name: str, members: Any) -> None:
        if self.ref0(v):
            return
        self.out.append(0x10)
        self.key0(class_name)
        self.members0(members)

    def key0(self, key: Any) -> None:
        if type(key) is not str and not isinstance(key, str):
            raise AMFEncodeError(f"AMF object keys must be str, not {type(key).__name__!r}")
        data = _utf8(key)
        if len(data) > 0xFFFF:
            raise AMFEncodeError("AMF0 key or class name longer than 65535 bytes")
        self.out += _H.pack(len(data))
        self.out += data

    def members0(self, mapping: Any) -> None:
        self.enter()
        for key, value in mapping.items():
            if not key:
                raise AMFEncodeError("AMF object keys must not be empty")
            self.key0(key)
            self.write0(value)
        self.out += b"\x00\x00\x09"
        self.depth -= 1

    def switch3(self, v: Any) -> None:
        """AVM+ switch: write ``v`` as AMF3 in a fresh AMF3 context."""
        saved = (self.strings3, self.objects3, self.count3, self.traits3)
        self.new_amf3_context()
        self.out.append(0x11)
        self.write3(v)
        self.strings3, self.objects3, self.count3, self.traits3 = saved

    # AMF3

    def u29(self, n: int) -> None:
        out = self.out
        if n < 0x80:
            out.append(n)
        elif n < 0x4000:
            out.append(n >> 7 | 0x80)
            out.append(n & 0x7F)
        elif n < 0x200000:
            out.append(n >> 14 | 0x80)
            out.append(n >> 7 & 0x7F | 0x80)
            out.append(n & 0x7F)
        elif n < 0x20000000:
            out.append(n >> 22 | 0x80)
            out.append(n >> 15 & 0x7F | 0x80)
            out.append(n >> 8 & 0x7F | 0x80)
            out.append(n & 0xFF)
        else:
            raise AMFEncodeError(f"length or reference {n} too large for AMF3 (U29)")

    def length3(self, n: int) -> None:
        if n > 0x0FFFFFFF:
            raise AMFEncodeError(f"AMF3 length {n} above 2**28-1")
        self.u29(n << 1 | 1)

    def string3(self, s: str) -> None:
        if not s:
            self.out.append(0x01)
            return
        index = self.strings3.get(s)
        if index is not None:
            self.u29(index << 1)
            return
        data = _utf8(s)
        self.length3(len(data))
        self.out += data
        self.strings3[s] = len(self.strings3)

    def ref3(self, v: Any) -> bool:
        index = self.objects3.get(id(v))
        if index is not None:
            self.u29(index << 1)
            return True
        self.objects3[id(v)] = self.count3
        self.count3 += 1
        self.keep.append(v)
        return False

    def write_traits3(self, key: tuple[str, bool, bool]) -> None:
        """Traits with no sealed members: key is (class name, dynamic, externalizable)."""
        index = self.traits3.get(key)
        if index is not None:
            self.u29(index << 2 | 0x01)
            return
        self.traits3[key] = len(self.traits3)
        self.u29((0x08 if key[1] else 0) | (0x04 if key[2] else 0) | 0x03)
        self.string3(key[0])

    def assoc3(self, mapping: Any) -> None:
        for key, value in mapping.items():
            if not isinstance(key, str):
                raise AMFEncodeError(f"AMF object keys must be str, not {type(key).__name__!r}")
            if not key:
                raise AMFEncodeError("AMF object keys must not be empty")
            self.string3(key)
            self.write3(value)
        self.out.append(0x01)

    def write3(self, v: Any) -> None:
        out = self.out
        alias = self.alias_of(v)
        if alias is not None:
            out.append(0x0A)
            if self.ref3(v):
                return
            self.enter()
            if alias.externalizable:
                self.write_traits3((alias.alias, False, True))
                alias.write(v, _ExternalWriter(self))  # type: ignore[misc]
            else:
                self.write_traits3((alias.alias, True, False))
                members = alias.to_dict(v)  # type: ignore[misc]
                self.keep.append(members)
                self.assoc3(members)
            self.depth -= 1
        elif v is None:
            out.append(0x01)
        elif v is UNDEFINED:
            out.append(0x00)
        elif isinstance(v, bool):
            out.append(0x03 if v else 0x02)
        elif isinstance(v, int):
            if _INT_MIN <= v <= _INT_MAX:
                out.append(0x04)
                self.u29(v & 0x1FFFFFFF)
            else:
                out.append(0x05)
                out += _D.pack(_to_double(v))
        elif isinstance(v, float):
            out.append(0x05)
            out += _D.pack(v)
        elif isinstance(v, (XMLDocument, XML)):
            out.append(0x07 if isinstance(v, XMLDocument) else 0x0B)
            if self.ref3(v):
                return
            data = _utf8(v)
            self.length3(len(data))
            out += data
        elif isinstance(v, str):
            out.append(0x06)
            self.string3(v)
        elif isinstance(v, TypedObject):
            out.append(0x0A)
            if self.ref3(v):
                return
            self.enter()
            self.write_traits3((v.class_name, True, False))
            self.assoc3(v)
            self.depth -= 1
        elif isinstance(v, ECMAArray):
            out.append(0x09)
            if self.ref3(v):
                return
            self.enter()
            out.append(0x01)  # no dense part
            self.assoc3(v)
            self.depth -= 1
        elif isinstance(v, Dictionary):
            out.append(0x11)
            if self.ref3(v):
                return
            self.enter()
            self.length3(len(v))
            out.append(0x01 if v.weak_keys else 0x00)
            for key, value in v.items():
                self.write3(key)
                self.write3(value)
            self.depth -= 1
        elif isinstance(v, dict):
            out.append(0x0A)
            if self.ref3(v):
                return
            self.enter()
            self.write_traits3(("", True, False))
            self.assoc3(v)
            self.depth -= 1
        elif isinstance(v, Vector):
            self.vector3(v)
        elif isinstance(v, (list, tuple)):
            out.append(0x09)
            if self.ref3(v):
                return
            self.enter()
            self.length3(len(v))
            out.append(0x01)  # no associative part
            for item in v:
                self.write3(item)
            self.depth -= 1
        elif isinstance(v, MixedArray):
            out.append(0x09)
            if self.ref3(v):
                return
            self.enter()
            self.length3(len(v.dense))
            self.assoc3(v.assoc)
            for item in v.dense:
                self.write3(item)
            self.depth -= 1
        elif isinstance(v, datetime):
            out.append(0x08)
            if self.ref3(v):
                return
            out.append(0x01)
            out += _D.pack(datetime_to_ms(v))
        elif isinstance(v, (bytes, bytearray, memoryview)):
            out.append(0x0C)
            if self.ref3(v):
                return
            data = bytes(v)
            self.length3(len(data))
            out += data
        elif v is UNSUPPORTED:
            raise AMFEncodeError("AMF3 has no 'unsupported' value")
        else:
            raise AMFEncodeError(f"cannot encode {type(v).__name__!r} as AMF3")

    def vector3(self, v: Vector) -> None:
        out = self.out
        out.append(_VECTOR_MARKERS[v.kind])
        if self.ref3(v):
            return
        self.length3(len(v))
        out.append(0x01 if v.fixed else 0x00)
        try:
            if v.kind == "int":
                for item in v:
                    out += _l.pack(item)
            elif v.kind == "uint":
                for item in v:
                    out += _L.pack(item)
            elif v.kind == "double":
                for item in v:
                    out += _D.pack(item)
            else:
                self.enter()
                self.string3(v.type_name)
                for item in v:
                    self.write3(item)
                self.depth -= 1
        except (struct.error, OverflowError, TypeError) as exc:
            raise AMFEncodeError(f"Vector.<{v.kind}> item out of range: {exc}") from None


class _ExternalWriter:
    """What an externalizable class's ``write`` sees of the encoder."""

    __slots__ = ("_enc",)

    def __init__(self, enc: _Encoder) -> None:
        self._enc = enc

    def write_value(self, value: Any) -> None:
        self._enc.write3(value)

    def write_bytes(self, data: bytes) -> None:
        self._enc.out += data


def _utf8(s: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AMFEncodeError(f"string is not encodable as UTF-8: {exc}") from None


def _to_double(v: float) -> float:
    try:
        return float(v)
    except OverflowError:
        raise AMFEncodeError("integer too large for an AMF number (double)") from None


def dumps(value: Any, *, version: int = 0, max_depth: int = DEFAULT_MAX_DEPTH,
          registry: ClassRegistry | None = None) -> bytes:
    """Encode one value as AMF0 (``version=0``) or AMF3 (``version=3``)."""
    _check_args(version, max_depth)
    enc = _Encoder(registry, max_depth)
    try:
        if version == 0:
            enc.write0(value)
        else:
            enc.write3(value)
    except RecursionError:
        raise AMFEncodeError("value nested too deep for the Python stack") from None
    return bytes(enc.out)


def dumps_all(values: Iterable[Any], *, version: int = 0, max_depth: int = DEFAULT_MAX_DEPTH,
              registry: ClassRegistry | None = None) -> bytes:
    """Encode a sequence of values back to back (a command message body)."""
    _check_args(version, max_depth)
    enc = _Encoder(registry, max_depth)
    write = enc.write0 if version == 0 else enc.write3
    try:
        for value in values:
            write(value)
    except RecursionError:
        raise AMFEncodeError("value nested too deep for the Python stack") from None
    return bytes(enc.out)


# --- decoding ------------------------------------------------------------

_IN_PROGRESS = object()  # table slot of an externalizable object being read


class _Decoder:
    """One decode call.

    The budget: ``left`` is how many more values the call may produce.  Each
    value takes 1 (member names, class names and trait names are keys and
    take nothing); a container takes 1 and its members take their own.  The
    expanded size of each table entry (``sizes0``, ``sizes3``, parallel to
    ``refs0`` and ``objects3``) is set when the entry is complete: 1 for a
    date, XML, ByteArray; 1 + n for a Vector of n numbers; for a container,
    what the budget went down by while it was read.  An object reference
    takes the expanded size of what it refers to, or 1 for a container still
    being read (a cycle; its size is 0 until then).
    """

    def __init__(self, data: Any, max_depth: int, max_length: int,
                 registry: ClassRegistry | None, max_values: int, references: bool) -> None:
        self.data = data if type(data) is bytes else memoryview(data).tobytes()
        self.pos = 0
        self.end = len(self.data)
        self.max_depth = max_depth
        self.max_length = max_length
        self.registry = DEFAULT_REGISTRY if registry is None else registry
        self.max_values = max_values
        self.left = max_values
        self.references = references
        self.depth = 0
        self.refs0: list[Any] = []
        self.sizes0: list[int] = []
        self.new_amf3_context()

    def new_amf3_context(self) -> None:
        self.strings3: list[str] = []
        self.objects3: list[Any] = []
        self.sizes3: list[int] = []
        self.traits3: list[tuple[str, tuple[str, ...], bool, bool]] = []

    # primitives

    def take(self, n: int) -> bytes:
        pos = self.pos
        if n > self.end - pos:
            raise AMFDecodeError(f"truncated AMF data: need {n} bytes at offset {pos}, "
                                 f"{self.end - pos} left")
        self.pos = pos + n
        return self.data[pos:pos + n]

    def byte(self) -> int:
        if self.pos >= self.end:
            raise AMFDecodeError(f"truncated AMF data: need 1 bytes at offset {self.pos}, "
                                 f"{self.end - self.pos} left")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u16(self) -> int:
        return int(_H.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_L.unpack(self.take(4))[0])

    def double(self) -> float:
        return float(_D.unpack(self.take(8))[0])

    def check_length(self, n: int, unit: int = 1) -> None:
        """Refuse a length above max_length or beyond the bytes that remain."""
        if n > self.max_length:
            raise AMFDecodeError(f"AMF length {n} above max_length={self.max_length}")
        if n * unit > self.end - self.pos:
            raise AMFDecodeError(f"truncated AMF data: length {n} at offset {self.pos} exceeds "
                                 f"the {self.end - self.pos} bytes left")

    def text(self, n: int) -> str:
        self.check_length(n)
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AMFDecodeError(f"invalid UTF-8 in AMF string: {exc}") from None

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise AMFDecodeError(f"AMF value nested deeper than max_depth={self.max_depth}")

    # the budget

    def take_values(self, n: int) -> None:
        """Spend n values of the budget."""
        if n > self.left:
            raise AMFDecodeError(f"AMF data decodes to more than {self.max_values} values "
                                 f"(references expanded): max_values={self.max_values}")
        self.left -= n

    def need_values(self, n: int) -> None:
        """Refuse a container of n members before reading any: each takes a value."""
        if n > self.left:
            self.take_values(n)  # raises

    def no_references(self, what: str, index: int) -> None:
        raise AMFDecodeError(f"{what} {index}: references are not allowed (references=False)")

    # AMF0

    def read0(self) -> Any:
        marker = self.byte()
        if marker == 0x00:
            number = self.double()
            self.take_values(1)
            return number
        if marker == 0x01:
            flag = self.byte() != 0
            self.take_values(1)
            return flag
        if marker == 0x02:
            text = self.text(self.u16())
            self.take_values(1)
            return text
        if marker == 0x03:
            obj: dict[str, Any] = {}
            start = self.left
            index = self.open0(obj)
            self.members0(obj)
            self.close0(index, start)
            return obj
        if marker == 0x05:
            self.take_values(1)
            return None
        if marker == 0x06:
            self.take_values(1)
            return UNDEFINED
        if marker == 0x07:
            index = self.u16()
            if not self.references:
                self.no_references("AMF0 reference", index)
            if index >= len(self.refs0):
                raise AMFDecodeError(f"AMF0 reference {index} out of range "
                                     f"({len(self.refs0)} objects)")
            self.take_values(self.sizes0[index] or 1)  # 0: still being read, a cycle
            return self.refs0[index]
        if marker == 0x08:
            self.u32()  # entry count: a hint, often wrong; the end marker decides
            arr = ECMAArray()
            start = self.left
            index = self.open0(arr)
            self.members0(arr)
            self.close0(index, start)
            return arr
        if marker == 0x0A:
            n = self.u32()
            self.check_length(n)
            self.need_values(1 + n)
            items: list[Any] = []
            start = self.left
            index = self.open0(items)
            self.enter()
            for _ in range(n):
                items.append(self.read0())
            self.depth -= 1
            self.close0(index, start)
            return items
        if marker == 0x0B:
            ms = self.double()
            self.take(2)  # timezone: reserved, written as 0
            date = ms_to_datetime(ms)
            self.take_values(1)
            return date
        if marker == 0x0C:
            text = self.text(self.u32())
            self.take_values(1)
            return text
        if marker == 0x0D:
            self.take_values(1)
            return UNSUPPORTED
        if marker == 0x0F:
            xml = XMLDocument(self.text(self.u32()))
            self.take_values(1)
            return xml
        if marker == 0x10:
            class_name = self.text(self.u16())
            typed = TypedObject(class_name)
            start = self.left
            index = self.open0(typed)
            self.members0(typed)
            self.close0(index, start)
            alias = self.registry.by_alias(class_name)
            if alias is not None and not alias.externalizable:
                converted = alias.from_dict(dict(typed))  # type: ignore[misc]
                self.refs0[index] = converted
                return converted
            return typed
        if marker == 0x11:
            saved = (self.strings3, self.objects3, self.sizes3, self.traits3)
            self.new_amf3_context()
            value = self.read3()
            self.strings3, self.objects3, self.sizes3, self.traits3 = saved
            return value
        if marker == 0x04 or marker == 0x0E:
            name = "movieclip" if marker == 0x04 else "recordset"
            raise AMFDecodeError(f"reserved AMF0 marker 0x{marker:02x} ({name}) at offset "
                                 f"{self.pos - 1}")
        raise AMFDecodeError(f"unknown AMF0 marker 0x{marker:02x} at offset {self.pos - 1}")

    def open0(self, obj: Any) -> int:
        """Count a container and enter it in the AMF0 table; its index."""
        self.take_values(1)
        self.refs0.append(obj)
        self.sizes0.append(0)  # being read
        return len(self.refs0) - 1

    def close0(self, index: int, start: int) -> None:
        """A container is complete: its expanded size is what it took."""
        self.sizes0[index] = start - self.left

    def members0(self, obj: dict[str, Any]) -> None:
        self.enter()
        while True:
            key = self.text(self.u16())
            if not key:
                if self.byte() != 0x09:
                    raise AMFDecodeError(f"AMF0 empty key not followed by the object-end "
                                         f"marker at offset {self.pos - 1}")
                break
            obj[key] = self.read0()
        self.depth -= 1

    # AMF3

    def u29(self) -> int:
        n = 0
        for _ in range(3):
            b = self.byte()
            if b < 0x80:
                return n << 7 | b
            n = n << 7 | (b & 0x7F)
        return n << 8 | self.byte()

    def string3(self) -> str:
        header = self.u29()
        if not header & 1:
            index = header >> 1
            if index >= len(self.strings3):
                raise AMFDecodeError(f"AMF3 string reference {index} out of range "
                                     f"({len(self.strings3)} strings)")
            s = self.strings3[index]
            # repeating a long string costs its text: one value per 64 characters
            self.take_values(len(s) >> 6)
            return s
        s = self.text(header >> 1)
        if s:
            self.strings3.append(s)
        return s

    def object_ref3(self, header: int) -> Any:
        index = header >> 1
        if not self.references:
            self.no_references("AMF3 object reference", index)
        if index >= len(self.objects3):
            raise AMFDecodeError(f"AMF3 object reference {index} out of range "
                                 f"({len(self.objects3)} objects)")
        obj = self.objects3[index]
        if obj is _IN_PROGRESS:
            raise AMFDecodeError("AMF3 reference to an externalizable object still being read")
        self.take_values(self.sizes3[index] or 1)  # 0: still being read, a cycle
        return obj

    def open3(self, obj: Any) -> int:
        """Count a container and enter it in the AMF3 object table; its index."""
        self.take_values(1)
        self.objects3.append(obj)
        self.sizes3.append(0)  # being read
        return len(self.objects3) - 1

    def close3(self, index: int, start: int) -> None:
        self.sizes3[index] = start - self.left

    def add3(self, obj: Any, size: int) -> None:
        """Count a complete value of ``size`` values and enter it in the object table."""
        self.take_values(size)
        self.objects3.append(obj)
        self.sizes3.append(size)

    def read3(self) -> Any:
        marker = self.byte()
        if marker == 0x00:
            self.take_values(1)
            return UNDEFINED
        if marker == 0x01:
            self.take_values(1)
            return None
        if marker == 0x02:
            self.take_values(1)
            return False
        if marker == 0x03:
            self.take_values(1)
            return True
        if marker == 0x04:
            n = self.u29()
            self.take_values(1)
            return n - 0x20000000 if n & 0x10000000 else n
        if marker == 0x05:
            number = self.double()
            self.take_values(1)
            return number
        if marker == 0x06:
            s = self.string3()  # a string reference is not an object reference
            self.take_values(1)
            return s
        if marker == 0x07 or marker == 0x0B:
            header = self.u29()
            if not header & 1:
                return self.object_ref3(header)
            text = self.text(header >> 1)
            xml = XMLDocument(text) if marker == 0x07 else XML(text)
            self.add3(xml, 1)
            return xml
        if marker == 0x08:
            header = self.u29()
            if not header & 1:
                return self.object_ref3(header)
            date = ms_to_datetime(self.double())
            self.add3(date, 1)
            return date
        if marker == 0x09:
            return self.array3()
        if marker == 0x0A:
            return self.object3()
        if marker == 0x0C:
            header = self.u29()
            if not header & 1:
                return self.object_ref3(header)
            n = header >> 1
            self.check_length(n)
            data = self.take(n)
            self.add3(data, 1)
            return data
        if 0x0D <= marker <= 0x10:
            return self.vector3(marker)
        if marker == 0x11:
            return self.dictionary3()
        raise AMFDecodeError(f"unknown AMF3 marker 0x{marker:02x} at offset {self.pos - 1}")

    def array3(self) -> Any:
        header = self.u29()
        if not header & 1:
            return self.object_ref3(header)
        n = header >> 1
        self.check_length(n)
        self.need_values(1 + n)
        assoc = ECMAArray()
        start = self.left
        index = self.open3(assoc)
        self.enter()
        key = self.string3()
        while key:
            assoc[key] = self.read3()
            key = self.string3()
        if not assoc:
            dense: list[Any] = []
            self.objects3[index] = dense
            result: Any = dense
        elif n == 0:
            result = assoc
        else:
            mixed = MixedArray((), assoc)
            dense = mixed.dense
            self.objects3[index] = result = mixed
        self.check_length(n)
        for _ in range(n):
            dense.append(self.read3())
        self.depth -= 1
        self.close3(index, start)
        return result

    def object3(self) -> Any:
        header = self.u29()
        if not header & 1:
            return self.object_ref3(header)
        if not header & 2:
            index = header >> 2
            if index >= len(self.traits3):
                raise AMFDecodeError(f"AMF3 traits reference {index} out of range "
                                     f"({len(self.traits3)} traits)")
            class_name, sealed, dynamic, external = self.traits3[index]
        else:
            external = bool(header & 4)
            dynamic = bool(header & 8)
            count = header >> 4
            class_name = self.string3()
            if external:
                sealed = ()
            else:
                self.check_length(count)
                sealed = tuple(self.string3() for _ in range(count))
            self.traits3.append((class_name, sealed, dynamic, external))
        alias = self.registry.by_alias(class_name) if class_name else None
        self.enter()
        start = self.left
        if external:
            if alias is None or not alias.externalizable:
                raise AMFDecodeError(f"AMF3 externalizable class {class_name!r} is not "
                                     f"registered")
            index = self.open3(_IN_PROGRESS)
            obj = alias.read(_ExternalReader(self))  # type: ignore[misc]
            self.objects3[index] = obj
            self.close3(index, start)
            self.depth -= 1
            return obj
        members: dict[str, Any] = TypedObject(class_name) if class_name else {}
        index = self.open3(members)
        for name in sealed:
            members[name] = self.read3()
        if dynamic:
            key = self.string3()
            while key:
                members[key] = self.read3()
                key = self.string3()
        self.depth -= 1
        self.close3(index, start)
        if alias is not None and not alias.externalizable:
            converted = alias.from_dict(dict(members))  # type: ignore[misc]
            self.objects3[index] = converted
            return converted
        return members

    def vector3(self, marker: int) -> Any:
        header = self.u29()
        if not header & 1:
            return self.object_ref3(header)
        n = header >> 1
        fixed = self.byte() != 0
        if marker == 0x10:
            self.check_length(n)
            self.enter()
            vec = Vector((), "object", fixed, self.string3())
            self.need_values(1 + n)
            start = self.left
            index = self.open3(vec)
            self.check_length(n)
            for _ in range(n):
                vec.append(self.read3())
            self.depth -= 1
            self.close3(index, start)
            return vec
        size = 8 if marker == 0x0F else 4
        self.check_length(n, size)
        self.take_values(1 + n)  # the vector and its numbers
        raw = self.take(n * size)
        if marker == 0x0D:
            vec = Vector(struct.unpack(f">{n}l", raw), "int", fixed)
        elif marker == 0x0E:
            vec = Vector(struct.unpack(f">{n}L", raw), "uint", fixed)
        else:
            vec = Vector(struct.unpack(f">{n}d", raw), "double", fixed)
        self.objects3.append(vec)
        self.sizes3.append(1 + n)
        return vec

    def dictionary3(self) -> Any:
        header = self.u29()
        if not header & 1:
            return self.object_ref3(header)
        n = header >> 1
        weak = self.byte() != 0
        self.check_length(n, 2)
        self.need_values(1 + 2 * n)
        result = Dictionary((), weak)
        start = self.left
        index = self.open3(result)
        self.enter()
        for _ in range(n):
            key = self.read3()
            value = self.read3()
            try:
                result[key] = value
            except TypeError:
                raise AMFDecodeError(f"AMF3 Dictionary key of type {type(key).__name__!r} "
                                     f"is not hashable in Python") from None
        self.depth -= 1
        self.close3(index, start)
        return result


class _ExternalReader:
    """What an externalizable class's ``read`` sees of the decoder."""

    __slots__ = ("_dec",)

    def __init__(self, dec: _Decoder) -> None:
        self._dec = dec

    def read_value(self) -> Any:
        return self._dec.read3()

    def read_bytes(self, n: int) -> bytes:
        self._dec.check_length(n)
        return self._dec.take(n)


def loads(data: Any, *, version: int = 0, max_depth: int = DEFAULT_MAX_DEPTH,
          max_length: int = DEFAULT_MAX_LENGTH, max_values: int = DEFAULT_MAX_VALUES,
          references: bool = True, registry: ClassRegistry | None = None) -> Any:
    """Decode exactly one AMF0 or AMF3 value; trailing bytes are an error.

    ``max_values`` bounds the values the call produces, each reference
    counted as the whole value it refers to; ``references=False`` refuses
    object references.  Both raise AMFDecodeError (see :mod:`rtmpx.amf`).
    """
    _check_args(version, max_depth)
    budget = _check_budget(max_values, references)
    dec = _Decoder(data, max_depth, max_length, registry, budget, references)
    try:
        value = dec.read0() if version == 0 else dec.read3()
    except RecursionError:
        raise AMFDecodeError("AMF value nested too deep for the Python stack") from None
    if dec.pos != dec.end:
        raise AMFDecodeError(f"{dec.end - dec.pos} trailing bytes after the AMF value "
                             f"at offset {dec.pos}")
    return value


def loads_all(data: Any, *, version: int = 0, max_depth: int = DEFAULT_MAX_DEPTH,
              max_length: int = DEFAULT_MAX_LENGTH, max_values: int = DEFAULT_MAX_VALUES,
              references: bool = True, registry: ClassRegistry | None = None) -> list[Any]:
    """Decode every value in ``data`` (a command message body).

    Takes the arguments of :func:`loads`; ``max_values`` bounds all the
    values of the call together.
    """
    _check_args(version, max_depth)
    budget = _check_budget(max_values, references)
    dec = _Decoder(data, max_depth, max_length, registry, budget, references)
    read = dec.read0 if version == 0 else dec.read3
    values = []
    try:
        while dec.pos < dec.end:
            values.append(read())
    except RecursionError:
        raise AMFDecodeError("AMF value nested too deep for the Python stack") from None
    return values
