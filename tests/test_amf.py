"""AMF codec: round trips, twin agreement, registry, limits, API contract.

Byte-exact vectors written from the specifications live in
``test_amf_vectors.py``; this module checks properties over generated values
and the behaviour both twins must share.
"""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rtmpx
from rtmpx import _amf, _amf_py
from rtmpx import amf as facade
from rtmpx.amf import (
    UNDEFINED,
    UNSUPPORTED,
    XML,
    ArrayCollection,
    ClassRegistry,
    Dictionary,
    ECMAArray,
    MixedArray,
    ObjectProxy,
    TypedObject,
    Vector,
    XMLDocument,
)

# --- value strategies --------------------------------------------------------

keys = st.text(min_size=1, max_size=12)
texts = st.text(max_size=40)
finite = st.floats(allow_nan=False)
dates = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
    timezones=st.just(UTC),
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
hashable = st.one_of(texts, st.integers(-2**31, 2**31), finite, st.booleans(), st.none())

scalars = st.one_of(
    st.none(), st.just(UNDEFINED), st.booleans(), finite,
    st.integers(-2**53, 2**53), texts, dates,
    texts.map(XMLDocument), texts.map(XML), st.binary(max_size=40),
    st.lists(st.integers(-2**31, 2**31 - 1), max_size=8).map(lambda v: Vector(v, "int")),
    st.lists(st.integers(0, 2**32 - 1), max_size=8).map(lambda v: Vector(v, "uint", True)),
    st.lists(finite, max_size=8).map(lambda v: Vector(v, "double")),
)


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(keys, children, max_size=6),
        st.dictionaries(keys, children, min_size=1, max_size=6).map(ECMAArray),
        st.tuples(keys, st.dictionaries(keys, children, max_size=4)).map(
            lambda t: TypedObject(*t)),
        st.tuples(st.lists(children, min_size=1, max_size=4),
                  st.dictionaries(keys, children, min_size=1, max_size=4)).map(
            lambda t: MixedArray(*t)),
        st.tuples(st.lists(children, max_size=4), st.sampled_from(["", "*", "com.x.Y"]),
                  st.booleans()).map(lambda t: Vector(t[0], "object", t[2], t[1])),
        st.tuples(st.dictionaries(hashable, children, max_size=4), st.booleans()).map(
            lambda t: Dictionary(*t)),
    )


values = st.recursive(scalars, containers, max_leaves=25)
# Values holding the same containers more than once: encoded as references.
shared_values = st.tuples(values, containers(scalars)).map(
    lambda t: [t[1], t[0], t[1], {"x": t[1], "y": [t[0], t[1]]}])


def same(a: Any, b: Any, version: int) -> bool:
    """Deep equality that also checks the decoded types."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if version == 0 or isinstance(a, float) or not -2**28 <= a < 2**28:
            ok = isinstance(b, float)
        else:
            ok = type(b) is int
        return ok and a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, bytearray):
        return type(b) is bytes and a == b
    if isinstance(a, tuple):
        a = list(a)
    if isinstance(a, Vector) and a.kind != "object":
        return type(b) is Vector and a == b and all(type(x) is type(y) for x, y in zip(a, b))
    if isinstance(a, (Vector, Dictionary, MixedArray)):
        version = 3  # written after an AMF0 "switch to AMF3" marker
    if type(a) is not type(b):
        return False
    if isinstance(a, MixedArray):
        return same(a.dense, b.dense, version) and same(a.assoc, b.assoc, version)
    if isinstance(a, dict):
        return a == b and list(a) == list(b) and all(same(a[k], b[k], version) for k in a)
    if isinstance(a, list):
        return a == b and all(same(x, y, version) for x, y in zip(a, b))
    return bool(a == b)


# --- round trips and twin agreement ------------------------------------------

@pytest.mark.parametrize("version", [0, 3])
@given(value=values)
def test_round_trip_and_twins_agree(version: int, value: Any) -> None:
    data = _amf.dumps(value, version=version)
    assert _amf_py.dumps(value, version=version) == data
    for mod in (_amf, _amf_py):
        assert same(value, mod.loads(data, version=version), version)


@pytest.mark.parametrize("version", [0, 3])
@given(seq=st.lists(values, max_size=4))
def test_all_round_trip(version: int, seq: list[Any]) -> None:
    data = _amf.dumps_all(seq, version=version)
    assert _amf_py.dumps_all(seq, version=version) == data
    for mod in (_amf, _amf_py):
        assert same(seq, mod.loads_all(data, version=version), version)


def assert_twins_agree(data: bytes, version: int, **kwargs: Any) -> None:
    """Both twins give the same value, or the same AMFDecodeError (same text)."""
    results: list[tuple[str, Any]] = []
    for mod in (_amf, _amf_py):
        try:
            results.append(("ok", mod.loads_all(data, version=version, **kwargs)))
        except rtmpx.AMFDecodeError as exc:
            results.append(("error", str(exc)))
    assert results[0][0] == results[1][0], results
    if results[0][0] == "ok":
        assert same(results[0][1], results[1][1], version)
    else:
        assert results[0][1] == results[1][1]


@pytest.mark.parametrize("version", [0, 3])
@given(data=st.binary(max_size=64), max_values=st.integers(1, 40), references=st.booleans())
def test_twins_agree_on_any_bytes(version: int, data: bytes, max_values: int,
                                  references: bool) -> None:
    """Random input: a value or AMFDecodeError, and the same from both twins."""
    assert_twins_agree(data, version, max_values=max_values, references=references)


@pytest.mark.parametrize("version", [0, 3])
@given(value=shared_values, edits=st.lists(st.tuples(st.integers(0, 10_000),
                                                     st.integers(0, 255)), max_size=3),
       cut=st.integers(0, 10_000), max_values=st.integers(1, 200), references=st.booleans())
def test_twins_agree_on_damaged_references(version: int, value: Any,
                                           edits: list[tuple[int, int]], cut: int,
                                           max_values: int, references: bool) -> None:
    """Encodings full of references, bytes changed, maybe cut: the twins agree."""
    data = bytearray(_amf.dumps(value, version=version))
    for where, byte in edits:
        data[where % len(data)] = byte
    if cut % 3 == 0:
        del data[cut % len(data):]
    assert_twins_agree(bytes(data), version, max_values=max_values, references=references)


@pytest.mark.parametrize("version", [0, 3])
@given(value=values, cut=st.integers(0, 10_000))
def test_truncated_encoding_raises(version: int, value: Any, cut: int) -> None:
    data = _amf.dumps(value, version=version)
    cut %= len(data)
    for mod in (_amf, _amf_py):
        with pytest.raises(rtmpx.AMFDecodeError):
            mod.loads(data[:cut], version=version)


# --- the value budget: max_values and references -----------------------------

def expanded_size(value: Any) -> int:
    """The number of values in ``value``, shared objects counted in full.

    The rules of rtmpx.amf, applied to the Python value that was encoded
    (an oracle independent of either decoder): every value counts 1, a
    container 1 plus its members, keys nothing; a numeric Vector counts 1
    and each of its numbers; a Dictionary's keys are values.
    """
    if isinstance(value, Vector) and value.kind != "object":
        return 1 + len(value)
    if isinstance(value, Dictionary):
        return 1 + sum(expanded_size(k) + expanded_size(v) for k, v in value.items())
    if isinstance(value, dict):
        return 1 + sum(expanded_size(v) for v in value.values())
    if isinstance(value, MixedArray):
        return (1 + sum(expanded_size(v) for v in value.dense)
                + sum(expanded_size(v) for v in value.assoc.values()))
    if isinstance(value, (list, tuple)):
        return 1 + sum(expanded_size(v) for v in value)
    return 1


def reference_bomb(version: int, kind: str, levels: int) -> bytes:
    """An array of ``levels + 1`` containers, each holding two references to the one before.

    A few bytes per level; the expanded size doubles at each level, and a
    walk of the decoded value (repr, JSON, re-encoding) follows every path.
    """
    if version == 0:  # strict arrays; table index 0 is the outer array
        out = [b"\x0a" + struct.pack(">L", levels + 1), b"\x0a\x00\x00\x00\x02\x05\x05"]
        for k in range(1, levels + 1):
            ref = b"\x07" + struct.pack(">H", k)
            out.append(b"\x0a\x00\x00\x00\x02" + ref + ref)
        return b"".join(out)
    assert levels < 63  # object-table indexes below 64: one-byte U29 references
    if kind == "arrays":  # dense arrays [ref, ref]
        out = [bytes([0x09, (levels + 1) << 1 | 1, 0x01]), bytes.fromhex("09 05 01 01 01")]
        for k in range(1, levels + 1):
            out.append(bytes([0x09, 0x05, 0x01, 0x09, k << 1, 0x09, k << 1]))
        return b"".join(out)
    # anonymous objects {"a": ref, "b": ref}: traits 0 and strings "a", "b" are
    # inline in the first, referred to in the rest
    out = [bytes([0x09, (levels + 1) << 1 | 1, 0x01]), bytes.fromhex("0A 0B 01 03 61 01 03 62 01 01")]
    for k in range(1, levels + 1):
        out.append(bytes([0x0A, 0x01, 0x00, 0x0A, k << 1, 0x02, 0x0A, k << 1, 0x01]))
    return b"".join(out)


BOMBS = [(0, "strict-arrays"), (3, "arrays"), (3, "objects")]


@pytest.mark.parametrize("version,kind", BOMBS)
def test_reference_bomb_is_refused(amf: Any, version: int, kind: str) -> None:
    # Small: 5 levels decode, and the expanded size doubles at each level.
    small = amf.loads(reference_bomb(version, kind, 5), version=version)
    assert [expanded_size(level) for level in small] == [3, 7, 15, 31, 63, 127]
    # 40 levels: a few hundred bytes, 2**42 values once expanded.
    data = reference_bomb(version, kind, 40)
    assert len(data) < 1024
    with pytest.raises(rtmpx.AMFDecodeError,
                       match=r"more than 1000000 values \(references expanded\)"):
        amf.loads(data, version=version)
    with pytest.raises(rtmpx.AMFDecodeError, match="max_values=1000"):
        amf.loads(data, version=version, max_values=1000)
    with pytest.raises(rtmpx.AMFDecodeError, match="references are not allowed"):
        amf.loads(data, version=version, references=False)
    with pytest.raises(rtmpx.AMFDecodeError, match="max_values"):
        amf.loads_all(data + data, version=version)
    # max_depth does not help: the bomb is two levels deep.
    assert amf.loads(reference_bomb(version, kind, 5), version=version, max_depth=2)


@pytest.mark.parametrize("version", [0, 3])
@given(value=st.one_of(values, shared_values))
def test_max_values_is_the_expanded_size(version: int, value: Any) -> None:
    """A decode succeeds at max_values = the expanded size and fails one below."""
    data = _amf.dumps(value, version=version)
    size = expanded_size(value)
    for mod in (_amf, _amf_py):
        assert same(value, mod.loads(data, version=version, max_values=size), version)
        if size > 1:
            with pytest.raises(rtmpx.AMFDecodeError, match=f"max_values={size - 1}$"):
                mod.loads(data, version=version, max_values=size - 1)


@given(seq=st.lists(st.one_of(values, shared_values), min_size=1, max_size=4))
def test_max_values_counts_the_whole_call(seq: list[Any]) -> None:
    data = _amf.dumps_all(seq)
    size = sum(expanded_size(v) for v in seq)
    for mod in (_amf, _amf_py):
        assert len(mod.loads_all(data, max_values=size)) == len(seq)
        if size > 1:
            with pytest.raises(rtmpx.AMFDecodeError, match="max_values"):
                mod.loads_all(data, max_values=size - 1)


@pytest.mark.parametrize("version", [0, 3])
def test_max_values_refuses_a_long_array_before_allocating(amf: Any, version: int) -> None:
    # Each member takes at least one value: an array of a million members is
    # refused at its header, not after allocating room for them.
    data = amf.dumps([None] * 1_000_000, version=version)
    tracemalloc.start()
    try:
        with pytest.raises(rtmpx.AMFDecodeError, match="max_values=1000$"):
            amf.loads(data, version=version, max_values=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert len(amf.loads(data, version=version, max_values=1_000_001)) == 1_000_000


def test_budget_arguments_are_checked(amf: Any) -> None:
    for bad in (0, -1, -2**70):
        with pytest.raises(ValueError, match="max_values must be at least 1"):
            amf.loads(b"\x05", max_values=bad)
    for bad in (1.0, "10", None, True):
        with pytest.raises(TypeError, match="max_values must be an int"):
            amf.loads_all(b"\x05", max_values=bad)
    for bad in (0, 1, None, "yes"):
        with pytest.raises(TypeError, match="references must be True or False"):
            amf.loads(b"\x05", references=bad)
    assert amf.loads(b"\x05", max_values=1) is None
    # Above 2**63-1 acts as 2**63-1 (the compiled core counts in int64):
    # 60 levels of the bomb are 2**63-64 values, 61 levels 2**64-65.  (Only
    # len() of the result: comparing it would walk 2**63 paths.)
    assert len(amf.loads(reference_bomb(0, "strict-arrays", 60), max_values=2**80)) == 61
    with pytest.raises(rtmpx.AMFDecodeError, match=f"max_values={2**63 - 1}$"):
        amf.loads(reference_bomb(0, "strict-arrays", 61), max_values=2**80)


def test_facade_exports_the_default() -> None:
    assert facade.DEFAULT_MAX_VALUES == 1_000_000


def test_negative_zero_and_nan(amf: Any) -> None:
    for version in (0, 3):
        z = amf.loads(amf.dumps(-0.0, version=version), version=version)
        assert z == 0 and math.copysign(1, z) == -1
        assert math.isnan(amf.loads(amf.dumps(math.nan, version=version), version=version))


def test_any_buffer(amf: Any) -> None:
    data = amf.dumps(["connect", 1.0, {"app": "live"}])
    for buf in (data, bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        assert amf.loads(buf) == ["connect", 1.0, {"app": "live"}]
        assert amf.loads_all(buf) == [["connect", 1.0, {"app": "live"}]]


def test_references_for_identical_objects(amf: Any) -> None:
    shared = {"k": "v"}
    for version in (0, 3):
        out = amf.loads(amf.dumps([shared, shared, {"k": "v"}], version=version),
                        version=version)
        assert out[0] is out[1] and out[2] is not out[0]


def test_cycles_survive(amf: Any) -> None:
    for version in (0, 3):
        loop: list[Any] = []
        loop.append(loop)
        out = amf.loads(amf.dumps(loop, version=version), version=version)
        assert out[0] is out
        obj: dict[str, Any] = {}
        obj["self"] = obj
        out = amf.loads(amf.dumps(obj, version=version), version=version)
        assert out["self"] is out


def test_long_string_switch(amf: Any) -> None:
    assert amf.dumps("a" * 65535)[0] == 0x02
    assert amf.dumps("a" * 65536)[0] == 0x0C
    assert amf.dumps("é" * 32768)[0] == 0x0C  # 65536 UTF-8 bytes
    assert amf.loads(amf.dumps("é" * 40000)) == "é" * 40000


def test_ecma_array_count_is_real(amf: Any) -> None:
    data = amf.dumps(ECMAArray(a=1.0, b=2.0, c=3.0))
    assert data[:5] == b"\x08\x00\x00\x00\x03"


def test_amf0_int_decodes_as_float(amf: Any) -> None:
    out = amf.loads(amf.dumps(5))
    assert type(out) is float and out == 5.0


def test_amf3_only_types_switch_inside_amf0(amf: Any) -> None:
    for value in (b"\x00\x01", XML("<a/>"), Vector([1, 2], "int"), Dictionary({1: 2}),
                  MixedArray([1], {"a": 2}), ArrayCollection([1, 2])):
        data = amf.dumps(value)
        assert data[0] == 0x11
        assert same(value, amf.loads(data), 3)


def test_dates(amf: Any) -> None:
    moment = datetime(2026, 11, 20, 12, 30, 1, 250000, tzinfo=timezone(timedelta(hours=2)))
    for version in (0, 3):
        out = amf.loads(amf.dumps(moment, version=version), version=version)
        assert out == moment and out.tzinfo == UTC
    with pytest.raises(rtmpx.AMFEncodeError):
        amf.dumps(datetime(2026, 1, 1))  # naive: ambiguous
    with pytest.raises(rtmpx.AMFDecodeError):
        amf.loads(b"\x0b\x7f\xf0\x00\x00\x00\x00\x00\x00\x00\x00")  # +inf ms


# --- errors ------------------------------------------------------------------

def test_error_family() -> None:
    assert issubclass(rtmpx.AMFDecodeError, rtmpx.ProtocolError)
    assert issubclass(rtmpx.AMFDecodeError, ValueError)
    assert issubclass(rtmpx.AMFEncodeError, rtmpx.RtmpError)
    assert issubclass(rtmpx.AMFEncodeError, TypeError)
    assert issubclass(rtmpx.ProtocolError, rtmpx.RtmpError)


@pytest.mark.parametrize("value", [
    object(), {1: "int key"}, {"": "empty key"}, "\ud800", {1, 2}, 10**400, complex(1, 2),
    Vector([2**31], "int"), Vector([-1], "uint"), Vector(["x"], "double"),
])
def test_unencodable(amf: Any, value: Any) -> None:
    for version in (0, 3):
        with pytest.raises(rtmpx.AMFEncodeError):
            amf.dumps(value, version=version)


def test_unsupported_only_in_amf0(amf: Any) -> None:
    assert amf.loads(amf.dumps(UNSUPPORTED)) is UNSUPPORTED
    with pytest.raises(rtmpx.AMFEncodeError):
        amf.dumps(UNSUPPORTED, version=3)


def test_bad_version(amf: Any) -> None:
    with pytest.raises(ValueError):
        amf.dumps(1, version=1)
    with pytest.raises(ValueError):
        amf.loads(b"\x05", version=2)


def test_trailing_bytes(amf: Any) -> None:
    with pytest.raises(rtmpx.AMFDecodeError, match="trailing"):
        amf.loads(b"\x05\x05")
    assert amf.loads_all(b"\x05\x05") == [None, None]
    with pytest.raises(rtmpx.AMFDecodeError):
        amf.loads(b"")


@pytest.mark.parametrize("version,unit", [
    (0, b"\x0a\x00\x00\x00\x01"),    # strict array of one
    (0, b"\x03\x00\x01k"),           # object with key "k"
    (0, b"\x11\x09\x03\x01"),        # AMF3 dense array inside AMF0, again and again
    (3, b"\x09\x03\x01"),            # dense array of one
    (3, b"\x0a\x0b\x01\x03k"),       # dynamic object with key "k"
    (3, b"\x11\x03\x00"),            # dictionary of one key...
])
def test_deep_nesting_refused(amf: Any, version: int, unit: bytes) -> None:
    data = unit * 100_000 + b"\x01"
    with pytest.raises(rtmpx.AMFDecodeError):
        amf.loads(data, version=version)


def test_max_depth_and_max_length_are_settings(amf: Any) -> None:
    nested: Any = "x"
    for _ in range(10):
        nested = [nested]
    data = amf.dumps(nested)
    assert amf.loads(data, max_depth=10) == nested
    with pytest.raises(rtmpx.AMFDecodeError, match="max_depth"):
        amf.loads(data, max_depth=9)
    with pytest.raises(rtmpx.AMFEncodeError, match="max_depth"):
        amf.dumps(nested, max_depth=9)
    assert amf.loads(amf.dumps("abcd"), max_length=4) == "abcd"
    with pytest.raises(rtmpx.AMFDecodeError, match="max_length"):
        amf.loads(amf.dumps("abcde"), max_length=4)
    with pytest.raises(rtmpx.AMFDecodeError, match="max_length"):
        amf.loads(amf.dumps(b"abcde", version=3), version=3, max_length=4)


def test_huge_declared_lengths_do_not_allocate(amf: Any) -> None:
    for version, data in [
        (0, b"\x0a\xff\xff\xff\xff"), (0, b"\x0c\x7f\xff\xff\xff"), (0, b"\x0f\x00\xff\xff\xff"),
        (3, b"\x09\xff\xff\xff\xff"), (3, b"\x0c\xbf\xff\xff\xfd"), (3, b"\x0f\x9f\xff\xff\xff\x00"),
        (3, b"\x11\x9f\xff\xff\xff\x00"), (3, b"\x06\x9f\xff\xff\xff"),
    ]:
        for max_length in (2**31, 2**20):
            with pytest.raises(rtmpx.AMFDecodeError):
                amf.loads(data, version=version, max_length=max_length)


# --- class registry ----------------------------------------------------------

class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


class Packed:
    """An externalizable class with a raw-bytes body."""

    def __init__(self, tag: bytes, value: Any) -> None:
        self.tag, self.value = tag, value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Packed) and (self.tag, self.value) == (other.tag, other.value)


def _registry() -> ClassRegistry:
    reg = facade.DEFAULT_REGISTRY.copy()
    reg.register("geo.Point", Point)

    def write(obj: Packed, w: Any) -> None:
        w.write_bytes(obj.tag)
        w.write_value(obj.value)

    def read(r: Any) -> Packed:
        return Packed(r.read_bytes(2), r.read_value())

    reg.register_externalizable("x.Packed", Packed, read=read, write=write)
    return reg


def test_registered_typed_class(amf: Any) -> None:
    reg = _registry()
    for version in (0, 3):
        data = amf.dumps([Point(1.0, 2.0), Point(3.0, 4.0)], version=version, registry=reg)
        assert b"geo.Point" in data
        assert amf.loads(data, version=version, registry=reg) == [Point(1, 2), Point(3, 4)]
        # without the registry entry: a TypedObject, nothing instantiated
        plain = amf.loads(data, version=version)
        assert plain[0] == TypedObject("geo.Point", x=1.0, y=2.0)


def test_registered_externalizable(amf: Any) -> None:
    reg = _registry()
    value = [Packed(b"ab", {"n": 1}), Packed(b"cd", [1, 2])]
    for version in (0, 3):
        data = amf.dumps(value, version=version, registry=reg)
        assert amf.loads(data, version=version, registry=reg) == value
        with pytest.raises(rtmpx.AMFDecodeError, match="not registered"):
            amf.loads(data, version=version)


def test_wire_class_names_are_never_imported(amf: Any) -> None:
    for name in ("os.system", "subprocess.Popen", "builtins.eval"):
        data = amf.dumps(TypedObject(name, {"args": "rm -rf /"}))
        out = amf.loads(data)
        assert type(out) is TypedObject and out.class_name == name


def test_flex_collections(amf: Any) -> None:
    for value in (ArrayCollection([1, "a"]), ObjectProxy(a=1, b="x")):
        out = amf.loads(amf.dumps(value, version=3), version=3)
        assert type(out) is type(value) and out == value


# --- the facade --------------------------------------------------------------

def test_facade_uses_compiled_core() -> None:
    assert facade.implementation() == "cython"
    assert facade.dumps is _amf.dumps


def test_facade_pure_python_switch() -> None:
    code = ("import rtmpx.amf as a; print(a.implementation(), a.dumps is "
            "__import__('rtmpx._amf_py').\\_amf_py.dumps)").replace("\\", "")
    env = dict(os.environ, RTMPX_PUREPYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.split() == ["python", "True"]


def test_version_is_exported() -> None:
    assert isinstance(rtmpx.__version__, str) and rtmpx.__version__


def test_repeating_a_long_string_by_reference_costs_its_text(amf) -> None:  # type: ignore[no-untyped-def]
    """AMF3 string references are not object references (allowed with
    references=False), but a re-encode or a JSON walk writes the text each
    time: 1000 references to a 64 KiB string would be 64 MB.  Each costs one
    value per 64 characters of what it repeats."""
    text = "x" * 65536
    def u29(n: int) -> bytes:  # 4-byte form is enough for the sizes here
        out = bytes([n & 0x7F])
        n >>= 7
        while n:
            out = bytes([0x80 | (n & 0x7F)]) + out
            n >>= 7
        return out
    count = 1000
    body = (b"\x09" + u29(count << 1 | 1) + b"\x01"           # dense array of count
            + b"\x06" + u29(len(text) << 1 | 1) + text.encode()  # the string, once
            + (b"\x06" + u29(0)) * (count - 1))                 # then references to it
    with pytest.raises(amf.AMFDecodeError, match="max_values"):
        amf.loads(body, version=3, references=False, max_values=100_000)
    assert len(amf.loads(body, version=3, max_values=1_100_000)) == count
    # short strings repeated (member names, short values) cost nothing extra
    short = (b"\x09" + u29(count << 1 | 1) + b"\x01" + b"\x06" + u29(63 << 1 | 1)
             + b"y" * 63 + (b"\x06" + u29(0)) * (count - 1))
    assert len(amf.loads(short, version=3, references=False, max_values=count + 1)) == count


# --- the compiled decoder's string paths ----------------------------------------
# ASCII strings are checked a word at a time and copied; member names up to
# 32 bytes come from a key cache (AMF0 and AMF3).  The lengths below straddle
# the word size and the cache's limit, with a non-ASCII byte or invalid UTF-8
# at each place a word boundary could hide it.

STRING_LENGTHS = [0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 64]


def _strings(n: int) -> list[str]:
    base = "".join(chr(ord("a") + i % 26) for i in range(n))
    out = [base]
    for where in {0, n // 2, n - 1} if n else set():
        out.append(base[:where] + "é" + base[where + 1:])
    return out


@pytest.mark.parametrize("n", STRING_LENGTHS)
def test_strings_and_keys_of_every_length(amf: Any, n: int) -> None:
    for text in _strings(n):
        key = text or "k"
        for version in (0, 3):
            value = [text, {key: text, "x" + key: 1.0}, ECMAArray({key: [text]}), text]
            data = amf.dumps_all(value, version=version)
            for _ in range(2):  # the second time from the key cache
                out = amf.loads_all(data, version=version)
                assert same(value, out, version)
                assert list(out[1]) == [key, "x" + key]


@pytest.mark.parametrize("n", STRING_LENGTHS[1:])
def test_invalid_utf8_in_strings_and_keys(n: int) -> None:
    """The twins refuse the same bad bytes with the same message, wherever
    the bad byte is in a value or a member name."""
    for where in sorted({0, n // 2, n - 1}):
        for bad in (b"\xff", b"\xc3", b"\x80"):
            raw = bytearray(b"a" * n)
            raw[where:where + 1] = bad
            name = bytes(raw)
            n16 = struct.pack(">H", len(name))
            u29 = bytes([len(name) << 1 | 1]) if len(name) < 64 else (
                bytes([0x80 | (len(name) << 1 | 1) >> 7, (len(name) << 1 | 1) & 0x7F]))
            cases = [
                (0, b"\x02" + n16 + name),                                  # string
                (0, b"\x03" + n16 + name + b"\x05\x00\x00\x09"),            # member name
                (0, b"\x08\x00\x00\x00\x01" + n16 + name + b"\x05\x00\x00\x09"),
                (3, b"\x06" + u29 + name),                                  # string
                (3, b"\x09\x01" + u29 + name + b"\x01\x01"),                # assoc key
                (3, b"\x0a\x0b\x01" + u29 + name + b"\x01\x01"),            # dynamic member
                (3, b"\x0a\x13\x01" + u29 + name + b"\x01"),                # sealed member
            ]
            for version, data in cases:
                assert_twins_agree(data, version)
                with pytest.raises(rtmpx.AMFDecodeError, match="invalid UTF-8"):
                    _amf.loads_all(data, version=version)


def test_key_cache_collisions_and_references() -> None:
    """Many names that share prefixes and suffixes (the cache hashes a few
    words, and a slot holds one name), decoded repeatedly, in AMF0 and in AMF3
    where a cached member name is then repeated by string reference."""
    names = [f"{p}{i}{s}" for p in ("", "abcdefgh", "abcdefghabcdefgh")
             for s in ("", "zzzzzzzz", "zzzzzzzzzzzzzzzz") for i in range(300)]
    names = [n for n in names if len(n) <= 40]
    obj = {n: float(i) for i, n in enumerate(names)}
    for version in (0, 3):
        seq = [obj, ECMAArray(obj), list(obj), obj]
        data = _amf.dumps_all(seq, version=version)
        assert _amf_py.dumps_all(seq, version=version) == data
        for _ in range(3):
            out = _amf.loads_all(data, version=version)
            assert same(seq, out, version)
            assert [list(d) for d in (out[0], out[1])] == [names, names]
    # an AMF3 member name, then the same text as a value: a string reference
    data = _amf.dumps_all([{"duration": 1.0}, "duration", ["duration"]], version=3)
    assert data.count(b"duration") == 1
    assert _amf.loads_all(data, version=3) == [{"duration": 1.0}, "duration", ["duration"]]
    assert_twins_agree(data, 3, references=False)


def test_amf0_switches_to_amf3_more_than_once(amf: Any) -> None:
    """Each AMF0 switch marker starts an empty AMF3 context, also in
    loads_all and inside AMF0 containers; AMF0 references still work after."""
    inner = [Vector([1, 2], "int"), MixedArray([1], {"a": "b"})]
    obj = {"v": inner[0], "m": inner[1], "s": "x"}
    seq = [obj, inner[0], obj, [inner[1], obj]]
    data = amf.dumps_all(seq)
    assert data.count(b"\x11") >= 4
    out = amf.loads_all(data)
    assert same(seq, out, 0)
    assert out[2] is out[0] and out[3][1] is out[0]
