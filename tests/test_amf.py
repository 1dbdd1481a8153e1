"""AMF codec: round trips, twin agreement, registry, limits, API contract.

Byte-exact vectors written from the specifications live in
``test_amf_vectors.py``; this module checks properties over generated values
and the behaviour both twins must share.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
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


@pytest.mark.parametrize("version", [0, 3])
@given(data=st.binary(max_size=64))
def test_twins_agree_on_any_bytes(version: int, data: bytes) -> None:
    """Random input: a value or AMFDecodeError, and the same from both twins."""
    results = []
    for mod in (_amf, _amf_py):
        try:
            results.append(("ok", mod.loads_all(data, version=version)))
        except rtmpx.AMFDecodeError:
            results.append(("error", None))
    assert results[0][0] == results[1][0]
    if results[0][0] == "ok":
        assert same(results[0][1], results[1][1], version)


@pytest.mark.parametrize("version", [0, 3])
@given(value=values, cut=st.integers(0, 10_000))
def test_truncated_encoding_raises(version: int, value: Any, cut: int) -> None:
    data = _amf.dumps(value, version=version)
    cut %= len(data)
    for mod in (_amf, _amf_py):
        with pytest.raises(rtmpx.AMFDecodeError):
            mod.loads(data[:cut], version=version)


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
