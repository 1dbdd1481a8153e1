"""Python types for AMF values, and the class-alias registry.

Shared by the compiled codec (:mod:`rtmpx._amf`) and its pure-Python twin
(:mod:`rtmpx._amf_py`), so that a value decoded by one is the same kind of
object as one decoded by the other.  The public names are re-exported by
:mod:`rtmpx.amf`; see its docstring for the full mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Self

from .errors import AMFDecodeError, AMFEncodeError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_MAX_VALUES",
    "DEFAULT_REGISTRY",
    "MAX_DEPTH_LIMIT",
    "UNDEFINED",
    "UNSUPPORTED",
    "XML",
    "ArrayCollection",
    "ClassAlias",
    "ClassRegistry",
    "Dictionary",
    "ECMAArray",
    "ExternalReader",
    "ExternalWriter",
    "MixedArray",
    "ObjectProxy",
    "TypedObject",
    "Undefined",
    "Unsupported",
    "Vector",
    "XMLDocument",
]

#: Deepest nesting of containers a decode (or encode) accepts by default.
DEFAULT_MAX_DEPTH = 64
#: The largest ``max_depth`` allowed: decoding recurses, and the C stack (or
#: Python's recursion limit, for the pure twin) must hold every level.
MAX_DEPTH_LIMIT = 256
#: Largest string, array, ByteArray, vector or dictionary length accepted by
#: default (RTMP messages are at most 16 MiB - 1 anyway).
DEFAULT_MAX_LENGTH = 16 * 1024 * 1024
#: Most values one decode call may produce, a reference counting as the whole
#: value it refers to (expanded): AMF references let a few hundred bytes
#: decode into a shared structure with 2**40 paths.
DEFAULT_MAX_VALUES = 1_000_000
#: ``max_values`` above this act as this (the compiled core counts in int64).
MAX_VALUES_LIMIT = 2**63 - 1


class Undefined:
    """The AMF ``undefined`` value (distinct from ``null``, which is None)."""

    __slots__ = ()
    _instance: Undefined | None = None

    def __new__(cls) -> Self:
        if cls._instance is None:
            cls._instance = object.__new__(cls)
        return cls._instance  # type: ignore[return-value]

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


class Unsupported:
    """The AMF0 ``unsupported`` marker (0x0D).  AMF3 has no such value."""

    __slots__ = ()
    _instance: Unsupported | None = None

    def __new__(cls) -> Self:
        if cls._instance is None:
            cls._instance = object.__new__(cls)
        return cls._instance  # type: ignore[return-value]

    def __repr__(self) -> str:
        return "UNSUPPORTED"

    def __reduce__(self) -> str:
        return "UNSUPPORTED"


UNDEFINED = Undefined()
UNSUPPORTED = Unsupported()


class ECMAArray(dict):  # type: ignore[type-arg]
    """An associative array (AMF0 ECMA array, AMF3 array with only named keys).

    ``onMetaData`` decodes to one.  Keys are strings.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ECMAArray({dict.__repr__(self)})"


class TypedObject(dict):  # type: ignore[type-arg]
    """An object of a named class, decoded without importing anything.

    A dict of its members with the wire class name in :attr:`class_name`.
    Equal to another TypedObject only when the class names match too.
    """

    __slots__ = ("class_name",)

    def __init__(self, class_name: str, mapping: Mapping[str, Any] | Iterable[Any] = (), /,
                 **members: Any) -> None:
        dict.__init__(self, mapping, **members)
        self.class_name = class_name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TypedObject) and other.class_name != self.class_name:
            return False
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __repr__(self) -> str:
        return f"TypedObject({self.class_name!r}, {dict.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (TypedObject, (self.class_name, dict(self)))


class XMLDocument(str):
    """An XML document (AMF0 0x0F, AMF3 0x07), kept as text: never parsed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"XMLDocument({str.__repr__(self)})"


class XML(str):
    """An E4X XML value (AMF3 0x0B), kept as text: never parsed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"XML({str.__repr__(self)})"


_VECTOR_KINDS = ("int", "uint", "double", "object")


class Vector(list):  # type: ignore[type-arg]
    """An AMF3 Vector: ``kind`` is "int", "uint", "double" or "object".

    ``fixed`` is the fixed-length flag; ``type_name`` is the element class
    name of an object vector ("" or "*" for any).
    """

    __slots__ = ("fixed", "kind", "type_name")

    def __init__(self, items: Iterable[Any] = (), kind: str = "object", fixed: bool = False,
                 type_name: str = "") -> None:
        if kind not in _VECTOR_KINDS:
            raise ValueError(f"Vector kind must be one of {_VECTOR_KINDS}, not {kind!r}")
        list.__init__(self, items)
        self.kind = kind
        self.fixed = bool(fixed)
        self.type_name = type_name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Vector) and (
            other.kind != self.kind or other.fixed != self.fixed
            or other.type_name != self.type_name
        ):
            return False
        return list.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __repr__(self) -> str:
        extra = f", type_name={self.type_name!r}" if self.type_name else ""
        return f"Vector({list.__repr__(self)}, kind={self.kind!r}, fixed={self.fixed}{extra})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Vector, (list(self), self.kind, self.fixed, self.type_name))


class Dictionary(dict):  # type: ignore[type-arg]
    """An AMF3 Dictionary: keys may be any hashable AMF value.

    ``weak_keys`` is the wire flag (meaningless to Python, kept for the
    round trip).
    """

    __slots__ = ("weak_keys",)

    def __init__(self, mapping: Mapping[Any, Any] | Iterable[Any] = (),
                 weak_keys: bool = False) -> None:
        dict.__init__(self, mapping)
        self.weak_keys = bool(weak_keys)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dictionary) and other.weak_keys != self.weak_keys:
            return False
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __repr__(self) -> str:
        return f"Dictionary({dict.__repr__(self)}, weak_keys={self.weak_keys})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Dictionary, (dict(self), self.weak_keys))


class MixedArray:
    """An AMF3 array with both a dense part (a list) and named keys (a dict)."""

    __slots__ = ("assoc", "dense")

    def __init__(self, dense: Iterable[Any] = (), assoc: Mapping[str, Any] | None = None) -> None:
        self.dense: list[Any] = list(dense)
        self.assoc: dict[str, Any] = dict(assoc or {})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MixedArray):
            return NotImplemented
        return self.dense == other.dense and self.assoc == other.assoc

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MixedArray({self.dense!r}, {self.assoc!r})"


# --- dates ---------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def datetime_to_ms(value: datetime) -> float:
    """Milliseconds since the Unix epoch of a timezone-aware datetime."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise AMFEncodeError("AMF dates need a timezone-aware datetime (e.g. tzinfo=timezone.utc)")
    return (value - _EPOCH) / _ONE_MS


def ms_to_datetime(ms: float) -> datetime:
    """The UTC datetime ``ms`` milliseconds after the Unix epoch."""
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except (OverflowError, ValueError):
        raise AMFDecodeError(f"AMF date out of range: {ms!r} ms") from None


# --- class aliases -------------------------------------------------------

class ExternalReader(Protocol):
    """What an externalizable class's ``read`` callable is handed."""

    def read_value(self) -> Any:
        """Decode the next AMF3 value of the body."""

    def read_bytes(self, n: int) -> bytes:
        """Take ``n`` raw bytes of the body."""


class ExternalWriter(Protocol):
    """What an externalizable class's ``write`` callable is handed."""

    def write_value(self, value: Any) -> None:
        """Encode ``value`` as AMF3 into the body."""

    def write_bytes(self, data: bytes) -> None:
        """Append raw bytes to the body."""


class ClassAlias:
    """One registry entry: how a wire class name maps to a Python type."""

    __slots__ = ("alias", "cls", "externalizable", "from_dict", "read", "to_dict", "write")

    def __init__(self, alias: str, cls: type, *, externalizable: bool = False,
                 to_dict: Callable[[Any], Mapping[str, Any]] | None = None,
                 from_dict: Callable[[dict[str, Any]], Any] | None = None,
                 read: Callable[[ExternalReader], Any] | None = None,
                 write: Callable[[Any, ExternalWriter], None] | None = None) -> None:
        self.alias = alias
        self.cls = cls
        self.externalizable = externalizable
        self.to_dict = to_dict
        self.from_dict = from_dict
        self.read = read
        self.write = write

    def __repr__(self) -> str:
        kind = "externalizable" if self.externalizable else "typed"
        return f"<ClassAlias {self.alias!r} -> {self.cls.__qualname__} ({kind})>"


class ClassRegistry:
    """An explicit allowlist of AMF class aliases.

    Nothing named by the wire is ever imported or instantiated: a typed
    object whose class name is not registered decodes to a
    :class:`TypedObject`; an *externalizable* object (whose body only its
    class knows how to read) must be registered or the decode fails with
    :class:`~rtmpx.AMFDecodeError`.
    """

    def __init__(self, aliases: Iterable[ClassAlias] = ()) -> None:
        self._by_alias: dict[str, ClassAlias] = {}
        self._by_type: dict[type, ClassAlias] = {}
        for entry in aliases:
            self._add(entry)

    def _add(self, entry: ClassAlias) -> ClassAlias:
        if not entry.alias:
            raise ValueError("a class alias must be a non-empty string")
        self._by_alias[entry.alias] = entry
        self._by_type[entry.cls] = entry
        return entry

    def register(self, alias: str, cls: type, *,
                 to_dict: Callable[[Any], Mapping[str, Any]] | None = None,
                 from_dict: Callable[[dict[str, Any]], Any] | None = None) -> ClassAlias:
        """Map a typed (sealed/dynamic) class: members travel as a dict.

        ``to_dict(obj)`` gives the members to write (default ``vars(obj)``);
        ``from_dict(members)`` builds the object (default: ``cls.__new__``
        then ``__dict__.update``).
        """
        if to_dict is None:
            to_dict = vars
        if from_dict is None:
            def from_dict(members: dict[str, Any], _cls: type = cls) -> Any:
                obj: Any = object.__new__(_cls)
                obj.__dict__.update(members)
                return obj
        return self._add(ClassAlias(alias, cls, to_dict=to_dict, from_dict=from_dict))

    def register_externalizable(self, alias: str, cls: type, *,
                                read: Callable[[ExternalReader], Any],
                                write: Callable[[Any, ExternalWriter], None]) -> ClassAlias:
        """Map an externalizable class, whose body ``read``/``write`` handle.

        ``read(reader)`` returns the object, using ``reader.read_value()``
        and ``reader.read_bytes(n)``; ``write(obj, writer)`` writes it with
        ``writer.write_value(v)`` and ``writer.write_bytes(b)``.
        """
        return self._add(ClassAlias(alias, cls, externalizable=True, read=read, write=write))

    def by_alias(self, alias: str) -> ClassAlias | None:
        """The entry for a wire class name, or None."""
        return self._by_alias.get(alias)

    def by_type(self, cls: type) -> ClassAlias | None:
        """The entry for a Python type (exact type), or None."""
        return self._by_type.get(cls)

    def copy(self) -> ClassRegistry:
        """A registry with the same entries, to extend without touching this one."""
        return ClassRegistry(self._by_alias.values())

    def __contains__(self, alias: object) -> bool:
        return alias in self._by_alias

    def __repr__(self) -> str:
        return f"ClassRegistry({sorted(self._by_alias)})"


class ArrayCollection(list):  # type: ignore[type-arg]
    """Flex ``flex.messaging.io.ArrayCollection``: externalized as one array."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ArrayCollection({list.__repr__(self)})"


class ObjectProxy(dict):  # type: ignore[type-arg]
    """Flex ``flex.messaging.io.ObjectProxy``: externalized as one object."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ObjectProxy({dict.__repr__(self)})"


def _read_array_collection(reader: ExternalReader) -> ArrayCollection:
    value = reader.read_value()
    if not isinstance(value, list):
        raise AMFDecodeError("ArrayCollection body is not an array")
    return ArrayCollection(value)


def _read_object_proxy(reader: ExternalReader) -> ObjectProxy:
    value = reader.read_value()
    if not isinstance(value, dict):
        raise AMFDecodeError("ObjectProxy body is not an object")
    return ObjectProxy(value)


#: The registry used when none is given: the two standard Flex collections.
DEFAULT_REGISTRY = ClassRegistry()
DEFAULT_REGISTRY.register_externalizable(
    "flex.messaging.io.ArrayCollection", ArrayCollection,
    read=_read_array_collection, write=lambda obj, w: w.write_value(list(obj)))
DEFAULT_REGISTRY.register_externalizable(
    "flex.messaging.io.ObjectProxy", ObjectProxy,
    read=_read_object_proxy, write=lambda obj, w: w.write_value(dict(obj)))
