"""Byte-exact AMF0/AMF3 test vectors, written by hand from the specifications.

Every expected byte string below was derived by hand from

* [AMF0] Adobe, "Action Message Format -- AMF 0" (2006): section numbers
  such as ``AMF0 2.10`` refer to it;
* [AMF3] Adobe, "AMF 3 Specification" (January 2013, the revision with
  Vector and Dictionary): ``AMF3 3.12`` and so on;

and cross-checked against independent implementations read for reference
only (FFmpeg ``libavformat/rtmppkt.c`` ``ff_amf_*`` and ``rtmpproto.c``
``gen_connect``, librtmp ``amf.c``, PyAMF's AMF3 tests).  None of them comes
from running the codec under test: IEEE-754 doubles were worked out by hand
(exponent ``0x3FF + e``, then the mantissa) and are listed in the table
below; ASCII text is written out byte by byte with the text in a comment.

Every test runs against both twins, the compiled :mod:`rtmpx._amf` and the
pure-Python :mod:`rtmpx._amf_py`, through the module-level ``amf`` fixture.

Each vector is ``(value, version, bytes)`` and is checked in both
directions where the mapping allows it: ``dumps(value)`` gives exactly the
bytes, and ``loads(bytes)`` gives back an equal value *of the exact type*
(``assert_same`` compares types recursively, the sign of zero, NaN, key
order, and the extra attributes of TypedObject, Vector and Dictionary).
Every vector is also cut at every length (each prefix must raise
AMFDecodeError), given a trailing value (``loads`` refuses it,
``loads_all`` returns it), and decoded from bytes, bytearray and
memoryviews.

Doubles used below (sign | 11-bit exponent | 52-bit mantissa, big endian):

=========  ==================  =================================
value      bytes               derivation
=========  ==================  =================================
0.0        0000000000000000    all zero
-0.0       8000000000000000    sign bit only
1.0        3FF0000000000000    2^0
1.5        3FF8000000000000    1.1b x 2^0
-1.0       BFF0000000000000    sign + 2^0
7.0        401C000000000000    1.11b x 2^2
10.0       4024000000000000    1.01b x 2^3
15.0       402E000000000000    1.111b x 2^3
252.0      406F800000000000    1.1111100b x 2^7
720.0      4086800000000000    1.01101b x 2^9
1280.0     4094000000000000    1.01b x 2^10
4071.0     40AFCE0000000000    1.11111100111b x 2^11  (0xFE7)
2^28       41B0000000000000    2^28
-2^28-1    C1B0000001000000    -(1 + 2^-28) x 2^28
1e12       426D1A94A2000000    0xE8D4A51000 = 1.68D4A51b x 2^39
+inf       7FF0000000000000    exponent all ones, mantissa 0
-inf       FFF0000000000000
NaN        7FF8000000000000    quiet NaN (the canonical one)
=========  ==================  =================================
"""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rtmpx import AMFDecodeError, AMFEncodeError
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

TWINS = ["rtmpx._amf", "rtmpx._amf_py"]
COMPILED, PURE = TWINS
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=TWINS)
def amf(request: pytest.FixtureRequest) -> ModuleType:
    """Each twin in turn: the compiled core, then the pure-Python one."""
    return importlib.import_module(request.param)


def h(text: str) -> bytes:
    """Bytes from hex written with spaces and line breaks for reading."""
    return bytes.fromhex(text)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAN = float("nan")
INF = float("inf")

# A null of each version: what the trailing-value tests append.
NULL = {0: h("05"), 3: h("01")}


# --------------------------------------------------------------- comparison

def assert_same(got: Any, exp: Any, path: str = "value") -> None:
    """Equal, of the exact same type, recursively; -0.0, NaN, key order too."""
    assert type(got) is type(exp), (
        f"{path}: got {type(got).__name__} {got!r}, expected {type(exp).__name__} {exp!r}")
    if isinstance(exp, float):
        if math.isnan(exp):
            assert math.isnan(got), f"{path}: {got!r} is not NaN"
        else:
            assert got == exp, f"{path}: {got!r} != {exp!r}"
            assert math.copysign(1.0, got) == math.copysign(1.0, exp), (
                f"{path}: sign of zero lost ({got!r})")
    elif isinstance(exp, MixedArray):
        assert_same(got.dense, exp.dense, path + ".dense")
        assert_same(got.assoc, exp.assoc, path + ".assoc")
    elif isinstance(exp, dict):
        assert list(got) == list(exp), f"{path}: keys {list(got)!r} != {list(exp)!r}"
        for key in exp:
            assert_same(got[key], exp[key], f"{path}[{key!r}]")
        if isinstance(exp, TypedObject):
            assert got.class_name == exp.class_name, f"{path}: class name"
        if isinstance(exp, Dictionary):
            assert got.weak_keys == exp.weak_keys, f"{path}: weak_keys"
    elif isinstance(exp, (list, tuple)):
        assert len(got) == len(exp), f"{path}: length {len(got)} != {len(exp)}"
        for i, (g, e) in enumerate(zip(got, exp)):
            assert_same(g, e, f"{path}[{i}]")
        if isinstance(exp, Vector):
            assert (got.kind, got.fixed, got.type_name) == (exp.kind, exp.fixed, exp.type_name), (
                f"{path}: Vector attributes {got!r} != {exp!r}")
    elif isinstance(exp, datetime):
        assert got == exp, f"{path}: {got!r} != {exp!r}"
        assert got.utcoffset() == timedelta(0), f"{path}: not UTC: {got!r}"
    else:
        assert got == exp, f"{path}: {got!r} != {exp!r}"


# ------------------------------------------------------------------ vectors

@dataclass(frozen=True)
class Vec:
    """One test vector.

    ``value`` is what ``loads`` must return (exact types).  When ``encode``
    is true, ``dumps(value)`` must give ``data``; ``also`` lists other
    inputs that encode to the same bytes (an int for an AMF0 number, a
    tuple for an array, ...).  ``check`` runs on the decoded value (object
    identity of references, and so on).
    """

    id: str
    version: int
    data: bytes
    value: Any
    encode: bool = True
    also: tuple[Any, ...] = ()
    check: Callable[[Any], None] | None = None


def same_object(*pairs: tuple[int, int]) -> Callable[[Any], None]:
    """A check that items i and j of the decoded list are one object."""
    def check(got: Any) -> None:
        for i, j in pairs:
            assert got[i] is got[j], f"items {i} and {j} should be the same object"
    return check


def negative_zero(got: Any) -> None:
    assert math.copysign(1.0, got) == -1.0


VECTORS: list[Vec] = []


def vec(id: str, version: int, data: bytes, value: Any, **kw: Any) -> None:
    VECTORS.append(Vec(id, version, data, value, **kw))


# ================================================================= AMF0 ====

# --- AMF0 2.2 Number: number-marker (00) DOUBLE -------------------------
vec("a0-number-0", 0, h("00 0000000000000000"), 0.0, also=(0,))
vec("a0-number-1.5", 0, h("00 3FF8000000000000"), 1.5)
vec("a0-number-neg1", 0, h("00 BFF0000000000000"), -1.0, also=(-1,))
vec("a0-number-neg0", 0, h("00 8000000000000000"), -0.0, check=negative_zero)
vec("a0-number-inf", 0, h("00 7FF0000000000000"), INF)
vec("a0-number-neginf", 0, h("00 FFF0000000000000"), -INF)
vec("a0-number-nan", 0, h("00 7FF8000000000000"), NAN)
# Other NaN bit patterns are NaNs too (decode only).
vec("a0-number-nan-negative", 0, h("00 FFF8000000000000"), NAN, encode=False)
vec("a0-number-nan-signalling", 0, h("00 7FF0000000000001"), NAN, encode=False)
vec("a0-number-2^28", 0, h("00 41B0000000000000"), 268435456.0, also=(268435456,))

# --- AMF0 2.3 Boolean: boolean-marker (01) U8, 0 false, non-zero true ----
vec("a0-false", 0, h("01 00"), False)
vec("a0-true", 0, h("01 01"), True)
vec("a0-true-nonzero", 0, h("01 02"), True, encode=False)
vec("a0-true-ff", 0, h("01 FF"), True, encode=False)

# --- AMF0 2.4 String: string-marker (02) UTF-8 (U16 byte length) ---------
vec("a0-string-empty", 0, h("02 0000"), "")
vec("a0-string-hello", 0, h("02 0005 68656C6C6F"), "hello")  # "hello"
# "é" C3 A9, "€" E2 82 AC, "😀" (U+1F600) F0 9F 98 80: 9 bytes, 3 chars.
vec("a0-string-utf8", 0, h("02 0009 C3A9 E282AC F09F9880"), "é€😀")
# Exactly 65535 UTF-8 bytes stays a short string ...
vec("a0-string-65535", 0, h("02 FFFF") + b"a" * 0xFFFF, "a" * 0xFFFF)
# ... and so does 65535 bytes of 32768 chars (the limit counts bytes).
vec("a0-string-65535-bytes-utf8", 0, h("02 FFFF") + h("C3A9") * 32767 + b"a",
    "é" * 32767 + "a")

# --- AMF0 2.14 Long String: long-string-marker (0C) UTF-8-long (U32) -----
# Used automatically above 65535 UTF-8 bytes.
vec("a0-longstring-65536", 0, h("0C 00010000") + b"a" * 0x10000, "a" * 0x10000)
vec("a0-longstring-65536-bytes-utf8", 0, h("0C 00010000") + h("C3A9") * 32768, "é" * 32768)
# A short text in the long form is still valid input (decode only).
vec("a0-longstring-short", 0, h("0C 00000001 61"), "a", encode=False)
vec("a0-longstring-empty", 0, h("0C 00000000"), "", encode=False)

# --- AMF0 2.5 Object: 03 *(UTF-8 key, value) 00 00 09 ---------------------
vec("a0-object-empty", 0, h("03 000009"), {})
# Key order is kept (b before a: not sorted).
vec("a0-object-order", 0,
    h("03"
      "0001 62  00 3FF0000000000000"   # "b": 1.0
      "0001 61  01 01"                 # "a": true
      "000009"),
    {"b": 1.0, "a": True}, also=({"b": 1, "a": True},))
vec("a0-object-nested", 0,
    h("03"
      "0001 6F  03 0001 78 05 000009"  # "o": {"x": null}
      "0001 73  02 0001 79"            # "s": "y"
      "000009"),
    {"o": {"x": None}, "s": "y"})

# Keys of equal length that must not be confused (a key cache would).
vec("a0-object-similar-keys", 0,
    h("03  0002 6162 05  0002 6261 05  0002 6163 05  0002 C3A9 05  000009"),
    {"ab": None, "ba": None, "ac": None, "é": None})

# --- AMF0 2.7 null (05), 2.8 undefined (06), 2.15 unsupported (0D) --------
vec("a0-null", 0, h("05"), None)
vec("a0-undefined", 0, h("06"), UNDEFINED)
vec("a0-unsupported", 0, h("0D"), UNSUPPORTED)

# --- AMF0 2.9 Reference: 07 U16 index into the table of complex values ---
# The table holds objects, typed objects, ECMA arrays and strict arrays in
# the order they begin, from index 0: the outer strict array is 0.
_d = {"a": 1.0}
vec("a0-ref-same-dict-twice", 0,
    h("0A 00000002"
      "03 0001 61 00 3FF0000000000000 000009"   # [0] {"a": 1.0}: table index 1
      "07 0001"),                               # [1] reference to index 1
    [_d, _d], check=same_object((0, 1)))
_inner: dict[str, Any] = {}
_outer = {"x": _inner}
vec("a0-ref-order-of-beginning", 0,
    h("0A 00000002"                 # table 0: the list
      "03 0001 78 03 000009 000009"  # table 1: outer, table 2: inner
      "07 0002"),                   # the inner object again
    [_outer, _inner], check=lambda got: (got[1] is got[0]["x"]) or pytest.fail("not shared"))
_e = ECMAArray()
vec("a0-ref-ecma-array", 0,
    h("0A 00000002  08 00000000 000009  07 0001"), [_e, _e], check=same_object((0, 1)))
_t = TypedObject("Foo", {})
vec("a0-ref-typed-object", 0,
    h("0A 00000002  10 0003 466F6F 000009  07 0001"),  # "Foo"
    [_t, _t], check=same_object((0, 1)))
_l: list[Any] = []
vec("a0-ref-strict-array", 0,
    h("0A 00000002  0A 00000000  07 0001"), [_l, _l], check=same_object((0, 1)))
# A value written through the AVM+ switch is not in the AMF0 table.
_d2: dict[str, Any] = {}
vec("a0-ref-skips-amf3-values", 0,
    h("0A 00000003  11 0C 05 6162  03 000009  07 0001"),
    [b"ab", _d2, _d2], check=same_object((1, 2)))

# --- AMF0 2.10 ECMA Array: 08 U32 associative-count, then like an object -
vec("a0-ecma-empty", 0, h("08 00000000 000009"), ECMAArray())
vec("a0-ecma-one", 0, h("08 00000001  0001 61 00 3FF0000000000000  000009"),
    ECMAArray({"a": 1.0}))
vec("a0-ecma-two", 0,
    h("08 00000002  0001 62 02 0001 78  0001 61 05  000009"),  # "b": "x", "a": null
    ECMAArray({"b": "x", "a": None}))
# The count is a hint: decoding trusts the end marker (decode only).
vec("a0-ecma-count-zero", 0, h("08 00000000  0001 61 00 3FF0000000000000  000009"),
    ECMAArray({"a": 1.0}), encode=False)
vec("a0-ecma-count-too-large", 0, h("08 00000005  0001 61 00 3FF0000000000000  000009"),
    ECMAArray({"a": 1.0}), encode=False)
vec("a0-ecma-count-huge", 0, h("08 FFFFFFFF  0001 61 00 3FF0000000000000  000009"),
    ECMAArray({"a": 1.0}), encode=False)

# --- AMF0 2.12 Strict Array: 0A U32 array-count *(value) ----------------
vec("a0-array-empty", 0, h("0A 00000000"), [], also=((),))
vec("a0-array-two", 0, h("0A 00000002  00 3FF0000000000000  02 0001 61"), [1.0, "a"],
    also=([1, "a"], (1.0, "a")))

# --- AMF0 2.13 Date: 0B DOUBLE (ms since epoch, UTC) S16 time-zone (0) ---
vec("a0-date-epoch", 0, h("0B 0000000000000000 0000"), EPOCH,
    also=(datetime(1970, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))),))
vec("a0-date-1ms", 0, h("0B 3FF0000000000000 0000"), EPOCH + timedelta(milliseconds=1))
vec("a0-date-before-epoch", 0, h("0B BFF0000000000000 0000"),
    EPOCH - timedelta(milliseconds=1))
vec("a0-date-1e12", 0, h("0B 426D1A94A2000000 0000"),
    datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC))
# The time-zone field is reserved: a non-zero one is ignored (decode only).
vec("a0-date-timezone-ignored", 0, h("0B 0000000000000000 FFC4"), EPOCH, encode=False)
vec("a0-date-timezone-ignored-2", 0, h("0B 426D1A94A2000000 01E0"),
    datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC), encode=False)

# --- AMF0 2.17 XML Document: 0F UTF-8-long -------------------------------
vec("a0-xmldocument", 0, h("0F 00000004 3C612F3E"), XMLDocument("<a/>"))  # "<a/>"
vec("a0-xmldocument-empty", 0, h("0F 00000000"), XMLDocument(""))

# --- AMF0 2.18 Typed Object: 10 class-name (UTF-8) *(property) 00 00 09 --
vec("a0-typed-object", 0,
    h("10 0003 466F6F  0001 78 00 3FF0000000000000  000009"),  # "Foo" {"x": 1.0}
    TypedObject("Foo", {"x": 1.0}))
vec("a0-typed-object-empty", 0, h("10 0003 466F6F 000009"), TypedObject("Foo", {}))

# --- AMF0 3.1 AVM+ Type Marker: 11 then one AMF3 value ------------------
# AMF3-only values travel through the switch, in a fresh AMF3 context.
vec("a0-avmplus-bytearray", 0, h("11 0C 05 6162"), b"ab", also=(bytearray(b"ab"),))
vec("a0-avmplus-xml", 0, h("11 0B 09 3C612F3E"), XML("<a/>"))
vec("a0-avmplus-vector", 0, h("11 0D 03 00 00000001"), Vector([1], "int"))
vec("a0-avmplus-dictionary", 0, h("11 11 03 00 06 03 61 04 01"), Dictionary({"a": 1}))
vec("a0-avmplus-mixed", 0, h("11 09 03 03 61 04 02 01 04 01"), MixedArray([1], {"a": 2}))
vec("a0-avmplus-arraycollection", 0,
    h("11 0A 07 43 666C65782E6D6573736167696E672E696F2E4172726179436F6C6C656374696F6E"
      "09 03 01 04 01"),
    ArrayCollection([1]))
vec("a0-avmplus-in-array", 0, h("0A 00000001 11 0C 05 6162"), [b"ab"])
# An AMF3 value as a member of an AMF0 object (AMF0 3.1).
vec("a0-avmplus-in-object", 0, h("03  0001 78 11 0C 05 6162  000009"), {"x": b"ab"})
# AMF0 resumes after the AMF3 value: {"x": b"ab", "y": 1.0}.
vec("a0-avmplus-then-amf0", 0,
    h("03  0001 78 11 0C 05 6162  0001 79 00 3FF0000000000000  000009"),
    {"x": b"ab", "y": 1.0})
# Any AMF3 value may follow the marker (decode only).
vec("a0-avmplus-integer", 0, h("11 04 01"), 1, encode=False)
vec("a0-avmplus-string", 0, h("11 06 03 61"), "a", encode=False)
vec("a0-avmplus-object", 0, h("11 0A 0B 01 03 61 04 01 01"), {"a": 1}, encode=False)


# ================================================================= AMF3 ====

# --- AMF3 3.2-3.5: undefined 00, null 01, false 02, true 03 -------------
vec("a3-undefined", 3, h("00"), UNDEFINED)
vec("a3-null", 3, h("01"), None)
vec("a3-false", 3, h("02"), False)
vec("a3-true", 3, h("03"), True)

# --- AMF3 3.6 integer: 04 U29 (1.3.1), signed 29-bit two's complement ----
# U29: 7 bits per byte with a continuation bit, the 4th byte has 8 bits.
for _n, _hex in [
    (0, "00"),
    (0x7F, "7F"),
    (0x80, "81 00"),
    (0x3FFF, "FF 7F"),
    (0x4000, "81 80 00"),
    (0x1FFFFF, "FF FF 7F"),
    (0x200000, "80 C0 80 00"),
    (0x0FFFFFFF, "BF FF FF FF"),      # 2^28 - 1, the largest integer
    (-1, "FF FF FF FF"),              # 0x1FFFFFFF
    (-0x10000000, "C0 80 80 00"),     # -2^28, the smallest: 0x10000000
]:
    vec(f"a3-int-{_n:#x}", 3, h("04 " + _hex), _n)
# The grammar also admits longer forms than needed (decode only).
vec("a3-int-overlong-2", 3, h("04 80 00"), 0, encode=False)
vec("a3-int-overlong-4", 3, h("04 80 80 80 01"), 1, encode=False)

# --- AMF3 3.7 double: 05 DOUBLE; integers beyond 29 bits go here too ----
vec("a3-int-2^28-as-double", 3, h("05 41B0000000000000"), 268435456.0, also=(268435456,))
vec("a3-int-below-min-as-double", 3, h("05 C1B0000001000000"), -268435457.0,
    also=(-268435457,))
vec("a3-double-1.5", 3, h("05 3FF8000000000000"), 1.5)
vec("a3-double-1.0", 3, h("05 3FF0000000000000"), 1.0)  # a float stays a double
vec("a3-double-neg0", 3, h("05 8000000000000000"), -0.0, check=negative_zero)
vec("a3-double-inf", 3, h("05 7FF0000000000000"), INF)
vec("a3-double-nan", 3, h("05 7FF8000000000000"), NAN)

# --- AMF3 3.8 String: 06 U29S (length << 1 | 1) UTF-8, or U29S-ref ------
vec("a3-string-empty", 3, h("06 01"), "")
vec("a3-string-a", 3, h("06 03 61"), "a")
vec("a3-string-utf8", 3, h("06 13 C3A9 E282AC F09F9880"), "é€😀")  # 9 bytes: 9<<1|1 = 0x13
vec("a3-string-64", 3, h("06 81 01") + b"a" * 64, "a" * 64)       # 129 = 81 01
vec("a3-string-8192", 3, h("06 81 80 01") + b"a" * 8192, "a" * 8192)  # 16385 = 81 80 01
# String references (index << 1): ["a", "a"] refers to string 0.
vec("a3-string-ref", 3, h("09 05 01  06 03 61  06 00"), ["a", "a"])
# The empty string is never entered in the table.
vec("a3-string-empty-not-referenced", 3, h("09 05 01  06 01  06 01"), ["", ""])
vec("a3-string-ref-after-empty", 3, h("09 07 01  06 01  06 03 61  06 00"), ["", "a", "a"])
vec("a3-string-ref-second", 3, h("09 07 01  06 03 61  06 03 62  06 02"), ["a", "b", "b"])
# Keys and values share the table: {"a": "a"}.
vec("a3-string-ref-key-value", 3, h("0A 0B 01  03 61  06 00  01"), {"a": "a"})

# Which strings go in the string table (AMF3 3.8, 3.9, 3.13):
# XML text is not entered: a later equal string is written inline ...
vec("a3-xml-not-in-string-table", 3, h("09 05 01  0B 09 3C612F3E  06 09 3C612F3E"),
    [XML("<a/>"), "<a/>"])
vec("a3-xmldocument-not-in-string-table", 3, h("09 05 01  07 09 3C612F3E  06 09 3C612F3E"),
    [XMLDocument("<a/>"), "<a/>"])
# ... but class names are: a string equal to one is a reference.
vec("a3-class-name-in-string-table", 3, h("09 05 01  0A 0B 07 466F6F 01  06 00"),
    [TypedObject("Foo", {}), "Foo"])

# --- AMF3 3.9 XMLDocument: 07 U29X (length << 1 | 1) UTF-8 ---------------
vec("a3-xmldocument", 3, h("07 09 3C612F3E"), XMLDocument("<a/>"))

# --- AMF3 3.10 Date: 08 U29D (01) DOUBLE ms since epoch ------------------
vec("a3-date-epoch", 3, h("08 01 0000000000000000"), EPOCH)
vec("a3-date-1e12", 3, h("08 01 426D1A94A2000000"), datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC))
# AMF3 3.10: "the remaining bits [of U29D-value] are not used" (decode only).
vec("a3-date-unused-header-bits", 3, h("08 03 0000000000000000"), EPOCH, encode=False)

# --- AMF3 3.11 Array: 09 U29A (dense count << 1 | 1), assoc pairs, 01,
#     dense values ---------------------------------------------------------
vec("a3-array-empty", 3, h("09 01 01"), [], also=((),))
vec("a3-array-dense", 3, h("09 05 01  04 01  04 02"), [1, 2], also=((1, 2),))
vec("a3-array-nested", 3, h("09 03 01  09 03 01  01"), [[None]])
vec("a3-array-assoc-only", 3, h("09 01  03 61 04 01  01"), ECMAArray({"a": 1}))
vec("a3-array-mixed", 3, h("09 03  03 61 04 02  01  04 01"), MixedArray([1], {"a": 2}))

# --- AMF3 3.12 Object: 0A U29O-traits class-name sealed-names
#     sealed-values dynamic-members 01 -------------------------------------
# Anonymous dynamic: traits 0B = 0 sealed << 4 | dynamic 8 | inline 2 | 1.
vec("a3-object-anon", 3, h("0A 0B 01  03 61 04 01  01"), {"a": 1})
vec("a3-object-empty", 3, h("0A 0B 01 01"), {})
vec("a3-object-order", 3, h("0A 0B 01  03 62 04 01  03 61 04 02  01"), {"b": 1, "a": 2})
# A second anonymous object refers to traits 0 (01) and string "a" (00).
vec("a3-object-traits-ref", 3,
    h("09 05 01"
      "0A 0B 01  03 61 04 01  01"
      "0A 01     00    04 02  01"),
    [{"a": 1}, {"a": 2}])
# The same dict twice: object table 0 is the list, 1 the dict: 0A 02.
_o = {"a": 1}
vec("a3-object-ref", 3, h("09 05 01  0A 0B 01 03 61 04 01 01  0A 02"), [_o, _o],
    check=same_object((0, 1)))
# Typed dynamic object: class name "Foo" inline.
vec("a3-typed-object", 3, h("0A 0B 07 466F6F  03 61 04 01  01"), TypedObject("Foo", {"a": 1}))
# Two of them: traits ref 0; "Foo" is string 0 and "a" string 1 (02).
vec("a3-typed-object-traits-ref", 3,
    h("09 05 01"
      "0A 0B 07 466F6F  03 61 04 01  01"
      "0A 01            02    04 02  01"),
    [TypedObject("Foo", {"a": 1}), TypedObject("Foo", {"a": 2})])
# Traits of an anonymous and of a typed object are distinct entries.
vec("a3-traits-anon-and-typed", 3,
    h("09 07 01"
      "0A 0B 01         03 61 04 01  01"   # traits 0 (anonymous), string 0 "a"
      "0A 0B 07 466F6F  00    04 01  01"   # traits 1 ("Foo"), string 1 "Foo"
      "0A 01            00    04 02  01"), # traits ref 0: anonymous again
    [{"a": 1}, TypedObject("Foo", {"a": 1}), {"a": 2}])
# SEALED typed object, 2 sealed members: 23 = 2 << 4 | inline 2 | 1, not
# dynamic; names "x", "y" then their values (decode only: our encoder
# writes dynamic members).
vec("a3-sealed", 3, h("0A 23 05 5074  03 78 03 79  04 01 04 02"),  # "Pt"
    TypedObject("Pt", {"x": 1, "y": 2}), encode=False)
vec("a3-sealed-traits-ref", 3,
    h("09 05 01"
      "0A 23 05 5074 03 78 03 79  04 01 04 02"
      "0A 01                      04 03 04 04"),
    [TypedObject("Pt", {"x": 1, "y": 2}), TypedObject("Pt", {"x": 3, "y": 4})], encode=False)
vec("a3-sealed-traits-ref-1", 3,
    h("09 07 01"
      "0A 0B 01  03 61 04 01  01"                # traits 0
      "0A 23 05 5074 03 78 03 79  04 01 04 02"   # traits 1
      "0A 05                      04 03 04 04"), # traits ref 1: 1 << 2 | 1
    [{"a": 1}, TypedObject("Pt", {"x": 1, "y": 2}), TypedObject("Pt", {"x": 3, "y": 4})],
    encode=False)
# Sealed and dynamic: 1B = 1 << 4 | dynamic 8 | 2 | 1.
vec("a3-sealed-and-dynamic", 3, h("0A 1B 05 5074  03 78  04 01  03 7A 04 05  01"),
    TypedObject("Pt", {"x": 1, "z": 5}), encode=False)
# Sealed + dynamic, then a traits reference to it: the second object has
# x = 7 (sealed, no name) and "z" (string 2, ref 04) = 9.
vec("a3-sealed-and-dynamic-traits-ref", 3,
    h("09 05 01"
      "0A 1B 05 5074  03 78  04 01  03 7A 04 05  01"
      "0A 01                 04 07  04    04 09  01"),
    [TypedObject("Pt", {"x": 1, "z": 5}), TypedObject("Pt", {"x": 7, "z": 9})], encode=False)
# Anonymous sealed object (class name ""): 13 = 1 << 4 | 2 | 1.
vec("a3-sealed-anonymous", 3, h("0A 13 01  03 78  04 01"), {"x": 1}, encode=False)
# Externalizable: 07 = externalizable 4 | inline 2 | 1, then the class
# name; the body belongs to the class.  ArrayCollection's body is an array.
# "flex.messaging.io.ArrayCollection" is 33 bytes: 33 << 1 | 1 = 0x43.
AC_NAME = h("43 666C65782E6D6573736167696E672E696F2E4172726179436F6C6C656374696F6E")
vec("a3-arraycollection", 3, h("0A 07") + AC_NAME + h("09 03 01 04 01"), ArrayCollection([1]))
vec("a3-arraycollection-traits-ref", 3,
    h("09 05 01  0A 07") + AC_NAME + h("09 03 01 04 01  0A 01  09 03 01 04 02"),
    [ArrayCollection([1]), ArrayCollection([2])])
# "flex.messaging.io.ObjectProxy" is 29 bytes: 0x3B.
vec("a3-objectproxy", 3,
    h("0A 07 3B 666C65782E6D6573736167696E672E696F2E4F626A65637450726F7879"
      "0A 0B 01 03 61 04 01 01"),
    ObjectProxy({"a": 1}))
# AMF3 3.12: the bits above the externalizable flag of U29O-traits-ext are
# "not significant" (decode only): 0F also has the dynamic bit set.
vec("a3-externalizable-insignificant-bits", 3, h("0A 0F") + AC_NAME + h("09 03 01 04 01"),
    ArrayCollection([1]), encode=False)

# --- AMF3 3.13 XML: 0B U29X UTF-8; 3.14 ByteArray: 0C U29B raw bytes ----
vec("a3-xml", 3, h("0B 09 3C612F3E"), XML("<a/>"))
vec("a3-bytearray", 3, h("0C 05 00FF"), b"\x00\xff", also=(bytearray(b"\x00\xff"),))
vec("a3-bytearray-empty", 3, h("0C 01"), b"")
# 2^21 bytes: (2^21 << 1 | 1) = 0x400001 takes the 4-byte U29 form.
vec("a3-bytearray-2MiB", 3, h("0C 81 80 80 01") + bytes(range(256)) * 8192,
    bytes(range(256)) * 8192)

# --- AMF3 3.15 Vector: 0D int / 0E uint / 0F double / 10 object;
#     U29V (count << 1 | 1), fixed U8, items (S32 / U32 / DOUBLE, or
#     object-type-name then values) ------------------------------------------
vec("a3-vector-int", 3, h("0D 05 00  80000000 7FFFFFFF"),
    Vector([-0x80000000, 0x7FFFFFFF], "int"))
vec("a3-vector-int-fixed", 3, h("0D 03 01  FFFFFFFF"), Vector([-1], "int", fixed=True))
vec("a3-vector-int-empty", 3, h("0D 01 00"), Vector([], "int"))
vec("a3-vector-uint", 3, h("0E 05 00  00000000 FFFFFFFF"), Vector([0, 0xFFFFFFFF], "uint"))
vec("a3-vector-uint-fixed", 3, h("0E 03 01  00000001"), Vector([1], "uint", fixed=True))
vec("a3-vector-double", 3, h("0F 05 01  3FF8000000000000 8000000000000000"),
    Vector([1.5, -0.0], "double", fixed=True))
vec("a3-vector-double-notfixed", 3, h("0F 03 00  7FF0000000000000"), Vector([INF], "double"))
vec("a3-vector-object-any", 3, h("10 05 00  03 2A  06 03 61  04 01"),  # type "*"
    Vector(["a", 1], "object", False, "*"))
vec("a3-vector-object-noname", 3, h("10 03 00  01  04 01"), Vector([1], "object"))
# The type name is in the string table: the element's class name is 00.
vec("a3-vector-object-typed", 3, h("10 03 01  07 466F6F  0A 0B 00 01"),
    Vector([TypedObject("Foo", {})], "object", True, "Foo"))

# --- AMF3 3.16 Dictionary: 11 U29Dict (count << 1 | 1) weak-keys U8
#     *(key value) ------------------------------------------------------------
vec("a3-dictionary", 3, h("11 03 00  06 03 61  04 01"), Dictionary({"a": 1}))
vec("a3-dictionary-weak", 3, h("11 03 01  04 01  03"), Dictionary({1: True}, weak_keys=True))
vec("a3-dictionary-empty", 3, h("11 01 00"), Dictionary())
vec("a3-dictionary-string-ref", 3, h("11 03 00  06 03 6B  06 00"), Dictionary({"k": "k"}))

# --- Object references of every kind in the object table (AMF3 3.1) -----
_x = XML("<a/>")
vec("a3-ref-xml", 3, h("09 05 01  0B 09 3C612F3E  0B 02"), [_x, _x], check=same_object((0, 1)))
_xd = XMLDocument("<a/>")
vec("a3-ref-xmldocument", 3, h("09 05 01  07 09 3C612F3E  07 02"), [_xd, _xd],
    check=same_object((0, 1)))
_b = bytes([0, 255])
vec("a3-ref-bytearray", 3, h("09 05 01  0C 05 00FF  0C 02"), [_b, _b], check=same_object((0, 1)))
_dt = datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)
vec("a3-ref-date", 3, h("09 05 01  08 01 426D1A94A2000000  08 02"), [_dt, _dt],
    check=same_object((0, 1)))
_arr: list[Any] = []
vec("a3-ref-array", 3, h("09 05 01  09 01 01  09 02"), [_arr, _arr], check=same_object((0, 1)))
_ecma = ECMAArray({"a": 1})
vec("a3-ref-ecma", 3, h("09 05 01  09 01 03 61 04 01 01  09 02"), [_ecma, _ecma],
    check=same_object((0, 1)))
_mixed = MixedArray([1], {"a": 2})
vec("a3-ref-mixed", 3, h("09 05 01  09 03 03 61 04 02 01 04 01  09 02"), [_mixed, _mixed],
    check=same_object((0, 1)))
_typed = TypedObject("Foo", {})
vec("a3-ref-typed", 3, h("09 05 01  0A 0B 07 466F6F 01  0A 02"), [_typed, _typed],
    check=same_object((0, 1)))
_vi = Vector([1], "int")
vec("a3-ref-vector", 3, h("09 05 01  0D 03 00 00000001  0D 02"), [_vi, _vi],
    check=same_object((0, 1)))
_vo = Vector([], "object", False, "*")
vec("a3-ref-vector-object", 3, h("09 05 01  10 01 00 03 2A  10 02"), [_vo, _vo],
    check=same_object((0, 1)))
_dic = Dictionary()
vec("a3-ref-dictionary", 3, h("09 05 01  11 01 00  11 02"), [_dic, _dic],
    check=same_object((0, 1)))
_ac = ArrayCollection([])
vec("a3-ref-arraycollection", 3, h("09 05 01  0A 07") + AC_NAME + h("09 01 01  0A 02"),
    [_ac, _ac], check=same_object((0, 1)))
# Table indexes count every complex value, nested ones included:
# list 0, {"o": ...} 1, inner list 2, then a reference to 2 (04).
_in: list[Any] = []
vec("a3-ref-index-order", 3,
    h("09 05 01  0A 0B 01 03 6F 09 01 01 01  09 04"),
    [{"o": _in}, _in], check=lambda got: (got[1] is got[0]["o"]) or pytest.fail("not shared"))

VECTOR_IDS = [v.id for v in VECTORS]
assert len(set(VECTOR_IDS)) == len(VECTOR_IDS), "duplicate vector id"
ENCODABLE = [v for v in VECTORS if v.encode]


# ------------------------------------------------------- the vector tests

@pytest.mark.parametrize("v", ENCODABLE, ids=[v.id for v in ENCODABLE])
def test_dumps_gives_the_spec_bytes(amf: ModuleType, v: Vec) -> None:
    assert amf.dumps(v.value, version=v.version).hex(" ") == v.data.hex(" ")
    for other in v.also:
        assert amf.dumps(other, version=v.version).hex(" ") == v.data.hex(" "), repr(other)


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_loads_gives_the_value(amf: ModuleType, v: Vec) -> None:
    got = amf.loads(v.data, version=v.version)
    assert_same(got, v.value)
    if v.check is not None:
        v.check(got)


def cut_points(n: int) -> list[int]:
    """Every prefix length of a short vector; a dense sample of a long one."""
    if n <= 512:
        return list(range(n))
    return sorted(set(range(64)) | set(range(n - 64, n)) | set(range(0, n, n // 97)))


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_every_truncation_raises(amf: ModuleType, v: Vec) -> None:
    for i in cut_points(len(v.data)):
        with pytest.raises(AMFDecodeError):
            amf.loads(v.data[:i], version=v.version)


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_trailing_bytes(amf: ModuleType, v: Vec) -> None:
    # A null is appended (05 in AMF0, 01 in AMF3: 05 is an AMF3 double and
    # would need 8 more bytes).
    data = v.data + NULL[v.version]
    with pytest.raises(AMFDecodeError):
        amf.loads(data, version=v.version)
    got = amf.loads_all(data, version=v.version)
    assert len(got) == 2
    assert_same(got[0], v.value)
    assert got[1] is None


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_any_buffer_type(amf: ModuleType, v: Vec) -> None:
    padded = b"\xAA\xBB" + v.data + b"\xCC"
    for buf in (
        bytearray(v.data),
        memoryview(v.data),
        memoryview(bytearray(v.data)),
        memoryview(padded)[2:-1],
        memoryview(bytearray(padded))[2:-1],
    ):
        assert_same(amf.loads(buf, version=v.version), v.value)
        assert_same(amf.loads_all(buf, version=v.version), [v.value])


def test_non_contiguous_memoryview(amf: ModuleType) -> None:
    data = h("09 05 01 04 01 04 02")
    strided = memoryview(bytes(b for c in data for b in (c, 0)))[::2]
    assert amf.loads(strided, version=3) == [1, 2]


# ------------------------------------------------------------- cycles

def test_amf0_self_referencing_list(amf: ModuleType) -> None:
    # AMF0 2.9: a list holding itself is a reference to index 0.
    data = h("0A 00000001  07 0000")
    got = amf.loads(data)
    assert type(got) is list and got[0] is got
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert amf.dumps(cyclic) == data


def test_amf0_self_referencing_object(amf: ModuleType) -> None:
    data = h("03  0004 73656C66 07 0000  000009")  # {"self": <itself>}
    got = amf.loads(data)
    assert got["self"] is got
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    assert amf.dumps(cyclic) == data


def test_amf3_self_referencing_array_and_object(amf: ModuleType) -> None:
    data = h("09 03 01  09 00")
    got = amf.loads(data, version=3)
    assert type(got) is list and got[0] is got
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert amf.dumps(cyclic, version=3) == data

    data = h("0A 0B 01  09 73656C66 0A 00  01")
    got = amf.loads(data, version=3)
    assert got["self"] is got
    obj: dict[str, Any] = {}
    obj["self"] = obj
    assert amf.dumps(obj, version=3) == data


# ------------------------------------------- AMF0 avm+ switch contexts

def test_each_avmplus_switch_starts_a_fresh_amf3_context(amf: ModuleType) -> None:
    # AMF0 3.1: the same bytes object twice, in two switches, is written
    # inline twice (no AMF3 reference crosses a switch) ...
    ba = b"ab"
    assert amf.dumps_all([ba, ba]) == h("11 0C 05 6162  11 0C 05 6162")
    assert amf.loads_all(h("11 06 03 61  11 06 03 61")) == ["a", "a"]
    # ... and a string reference into a previous switch's table is invalid.
    with pytest.raises(AMFDecodeError):
        amf.loads_all(h("11 06 03 61  11 06 00"))
    with pytest.raises(AMFDecodeError):
        amf.loads_all(h("11 0C 05 6162  11 0C 00"))


def test_string_table_excludes_xml_text(amf: ModuleType) -> None:
    # A string reference to XML text is out of range: XML is not entered.
    for marker in ("0B", "07"):
        with pytest.raises(AMFDecodeError):
            amf.loads(h(f"09 05 01  {marker} 09 3C612F3E  06 00"), version=3)


def test_empty_body(amf: ModuleType) -> None:
    for version in (0, 3):
        assert amf.loads_all(b"", version=version) == []
        assert amf.dumps_all([], version=version) == b""
        with pytest.raises(AMFDecodeError):
            amf.loads(b"", version=version)


def test_reference_tables_span_one_call(amf: ModuleType) -> None:
    # rtmpx.amf: "Reference tables ... live for one call": a later value of
    # a body may refer to an earlier one.
    d: dict[str, Any] = {}
    assert amf.dumps_all([d, d]) == h("03 000009  07 0000")
    got = amf.loads_all(h("03 000009  07 0000"))
    assert got == [{}, {}] and got[0] is got[1]
    assert amf.dumps_all(["a", "a"], version=3) == h("06 03 61  06 00")
    assert amf.loads_all(h("06 03 61  06 00"), version=3) == ["a", "a"]
    # ... and a new call starts empty.
    with pytest.raises(AMFDecodeError):
        amf.loads(h("07 0000"))


# ---------------------------------------------- real RTMP message bodies

@dataclass(frozen=True)
class Body:
    """A message body: several values back to back, each part in hex."""

    id: str
    parts: tuple[bytes, ...]
    values: list[Any]
    encode: bool = True

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)

    @property
    def boundaries(self) -> dict[int, int]:
        """Offset of each value boundary -> number of values before it."""
        out, pos = {0: 0}, 0
        for i, part in enumerate(self.parts):
            pos += len(part)
            out[pos] = i + 1
        return out


CONNECT_OBJECT = {
    "app": "live",
    "flashVer": "LNX 9,0,124,2",
    "tcUrl": "rtmp://localhost:1935/live",
    "fpad": False,
    "capabilities": 15.0,
    "audioCodecs": 4071.0,
    "videoCodecs": 252.0,
    "videoFunction": 1.0,
}
METADATA = ECMAArray({
    "duration": 0.0,
    "width": 1280.0,
    "height": 720.0,
    "videocodecid": 7.0,
    "audiocodecid": 10.0,
    "encoder": "Lavf61.7.100",
    "filesize": 0.0,
})


def _metadata_part(count: str) -> bytes:
    return h(
        "08" + count
        + "0008 6475726174696F6E          00 0000000000000000"   # duration 0
        + "0005 7769647468                00 4094000000000000"   # width 1280
        + "0006 686569676874              00 4086800000000000"   # height 720
        + "000C 766964656F636F6465636964  00 401C000000000000"   # videocodecid 7
        + "000C 617564696F636F6465636964  00 4024000000000000"   # audiocodecid 10
        + "0007 656E636F646572            02 000C 4C61766636312E372E313030"  # encoder
        + "0008 66696C6573697A65          00 0000000000000000"   # filesize 0
        + "000009")


BODIES = [
    # RTMP 7.2.1.1 connect, as FFmpeg's gen_connect writes it for playing:
    # "connect", transaction 1, then the command object.
    Body("ffmpeg-connect", (
        h("02 0007 636F6E6E656374"),                                    # "connect"
        h("00 3FF0000000000000"),                                       # 1.0
        h("03"
          "0003 617070                    02 0004 6C697665"             # app: "live"
          "0008 666C617368566572"                                       # flashVer:
          "02 000D 4C4E5820392C302C3132342C32"                          # "LNX 9,0,124,2"
          "0005 7463 55 72 6C             02 001A"                      # tcUrl
          "72746D703A2F2F6C6F63616C686F73743A313933352F6C697665"
          "0004 66706164                  01 00"                        # fpad: false
          "000C 6361706162696C6974696573  00 402E000000000000"          # capabilities 15
          "000B 617564696F436F64656373    00 40AFCE0000000000"          # audioCodecs 4071
          "000B 766964656F436F64656373    00 406F800000000000"          # videoCodecs 252
          "000D 766964656F46756E6374696F6E 00 3FF0000000000000"         # videoFunction 1
          "000009"),
    ), ["connect", 1.0, CONNECT_OBJECT]),
    # FFmpeg's publish connect: "type": "nonprivate", no capability fields.
    Body("ffmpeg-publish-connect", (
        h("02 0007 636F6E6E656374"),
        h("00 3FF0000000000000"),
        h("03"
          "0003 617070      02 0004 6C697665"                             # app: "live"
          "0004 74797065    02 000A 6E6F6E70726976617465"                 # type: nonprivate
          "0008 666C617368566572"                                         # flashVer
          "02 0023 464D4C452F332E302028636F6D70617469626C653B204C61766636312E372E31303029"
          "0005 746355726C  02 001A"                                      # tcUrl
          "72746D703A2F2F6C6F63616C686F73743A313933352F6C697665"
          "000009"),
    ), ["connect", 1.0, {"app": "live", "type": "nonprivate",
                         "flashVer": "FMLE/3.0 (compatible; Lavf61.7.100)",
                         "tcUrl": "rtmp://localhost:1935/live"}]),
    # A createStream command: name, transaction, null command object.
    Body("create-stream", (
        h("02 000C 63726561746553747265616D"),  # "createStream"
        h("00 4010000000000000"),               # 4.0
        h("05"),
    ), ["createStream", 4.0, None]),
    # FLV/RTMP data message: @setDataFrame("onMetaData", ECMA array).
    Body("setdataframe-onmetadata", (
        h("02 000D 4073657444617461467261 6D65"),   # "@setDataFrame"
        h("02 000A 6F6E4D65746144617461"),         # "onMetaData"
        _metadata_part("00000007"),
    ), ["@setDataFrame", "onMetaData", METADATA]),
    # The same with a wrong count, as a non-seekable muxer leaves it.
    Body("setdataframe-onmetadata-wrong-count", (
        h("02 000D 40736574446174614672616D65"),
        h("02 000A 6F6E4D65746144617461"),
        _metadata_part("00000000"),
    ), ["@setDataFrame", "onMetaData", METADATA], encode=False),
]


def test_connect_hex_is_what_was_meant() -> None:
    # A check of the hand-written hex itself: the body spells each key.
    body = BODIES[0].data
    for key in (b"\x00\x03app", b"\x00\x08flashVer", b"\x00\x05tcUrl", b"\x00\x04fpad",
                b"\x00\x0ccapabilities", b"\x00\x0baudioCodecs", b"\x00\x0bvideoCodecs",
                b"\x00\x0dvideoFunction"):
        assert key in body, key


@pytest.mark.parametrize("body", BODIES, ids=[b.id for b in BODIES])
def test_message_body_loads_all(amf: ModuleType, body: Body) -> None:
    assert_same(amf.loads_all(body.data), body.values)


@pytest.mark.parametrize("body", [b for b in BODIES if b.encode],
                         ids=[b.id for b in BODIES if b.encode])
def test_message_body_dumps_all(amf: ModuleType, body: Body) -> None:
    assert amf.dumps_all(body.values).hex(" ") == body.data.hex(" ")


@pytest.mark.parametrize("body", BODIES, ids=[b.id for b in BODIES])
def test_message_body_truncations(amf: ModuleType, body: Body) -> None:
    data, bounds = body.data, body.boundaries
    for i in range(len(data)):
        if i in bounds:
            assert_same(amf.loads_all(data[:i]), body.values[:bounds[i]])
        else:
            with pytest.raises(AMFDecodeError):
                amf.loads_all(data[:i])
    with pytest.raises(AMFDecodeError):  # several values: not one
        amf.loads(data)


# ----------------------------------------------------- markers that fail

@pytest.mark.parametrize("data", [
    h("04"),                 # AMF0 2.6 movieclip: reserved
    h("04 000009"),
    h("0E"),                 # AMF0 2.16 recordset: reserved
    h("0E 000009"),
    h("09"),                 # object-end is not a value
    h("12"), h("20"), h("7F"), h("FF"),   # unknown markers
    h("0A 00000001 04"),     # reserved marker inside an array
    h("03 0001 61 0E 000009"),
    h("03 0000 05"),         # an empty key must be followed by 09
    h("0A 00000001 09"),
], ids=lambda d: d.hex())
def test_amf0_bad_markers(amf: ModuleType, data: bytes) -> None:
    with pytest.raises(AMFDecodeError):
        amf.loads(data)
    with pytest.raises(AMFDecodeError):
        amf.loads_all(data)


@pytest.mark.parametrize("data", [
    h("12"), h("7F"), h("FF"),
    h("09 03 01 12"),
    h("11 12"),               # in AMF0, through the switch
], ids=lambda d: d.hex())
def test_amf3_bad_markers(amf: ModuleType, data: bytes) -> None:
    version = 0 if data[:1] == b"\x11" else 3
    with pytest.raises(AMFDecodeError):
        amf.loads(data, version=version)


@pytest.mark.parametrize("version, data", [
    (0, h("0B 7FF8000000000000 0000")),     # NaN ms
    (0, h("0B 7FF0000000000000 0000")),     # +inf ms
    (0, h("0B 7E37E43C8800759C 0000")),     # 1e300 ms: beyond any datetime
    (3, h("08 01 7FF8000000000000")),
    (3, h("08 01 FFF0000000000000")),
    (3, h("08 01 7E37E43C8800759C")),
], ids=lambda x: x.hex() if isinstance(x, bytes) else str(x))
def test_date_out_of_range_raises(amf: ModuleType, version: int, data: bytes) -> None:
    # A valid double that no datetime can hold: AMFDecodeError, nothing else.
    with pytest.raises(AMFDecodeError):
        amf.loads(data, version=version)


def test_unregistered_externalizable_class_raises(amf: ModuleType) -> None:
    # AMF3 3.12: an externalizable body is readable only by its class.
    with pytest.raises(AMFDecodeError):
        amf.loads(h("0A 07 07 466F6F  04 01"), version=3)  # "Foo"
    # ArrayCollection itself, with a registry that does not know it.
    data = h("0A 07") + AC_NAME + h("09 03 01 04 01")
    with pytest.raises(AMFDecodeError):
        amf.loads(data, version=3, registry=ClassRegistry())


def test_unhashable_dictionary_key_raises(amf: ModuleType) -> None:
    # AMF3 3.16 allows an object as a key; a Python dict cannot hold one.
    with pytest.raises(AMFDecodeError):
        amf.loads(h("11 03 00  0A 0B 01 01  04 01"), version=3)


# ------------------------------------------------------ encoding errors

@pytest.mark.parametrize("value, version", [
    (UNSUPPORTED, 3),                      # AMF3 has no unsupported type
    (datetime(2000, 1, 1), 0),             # naive datetime
    (datetime(2000, 1, 1), 3),
    (10 ** 400, 0),                        # beyond a double
    (10 ** 400, 3),
    ({1: "a"}, 0),                         # non-string key
    ({1: "a"}, 3),
    (Vector([2 ** 31], "int"), 3),         # beyond S32
    (Vector([-1], "uint"), 3),             # beyond U32
    (object(), 0),
    (object(), 3),
], ids=lambda x: repr(x)[:30] if not isinstance(x, int) else str(x)[:8])
def test_dumps_refuses(amf: ModuleType, value: Any, version: int) -> None:
    with pytest.raises(AMFEncodeError):
        amf.dumps(value, version=version)


# ---------------------------------------------------------------- limits

DEPTH = 100_000
DEEP = {
    # AMF0 strict arrays [[[...null...]]]
    "amf0-strict-arrays": (0, h("0A 00000001") * DEPTH + h("05")),
    # AMF0 objects {"a": {"a": ... null}}
    "amf0-objects": (0, h("03 0001 61") * DEPTH + h("05") + h("000009") * DEPTH),
    # AMF0 ECMA arrays
    "amf0-ecma-arrays": (0, h("08 00000001 0001 61") * DEPTH + h("05") + h("000009") * DEPTH),
    # AMF3 dense arrays
    "amf3-arrays": (3, h("09 03 01") * DEPTH + h("01")),
    # AMF3 objects: the first has inline traits and key, the rest refer to
    # traits 0 and string 0.
    "amf3-objects": (3, h("0A 0B 01 03 61") + h("0A 01 00") * (DEPTH - 1) + h("01")
                     + h("01") * DEPTH),
    # AMF3 object vectors and dictionaries
    "amf3-vectors": (3, h("10 03 00 01") * DEPTH + h("01")),
    "amf3-dictionaries": (3, h("11 03 00 04 01") * DEPTH + h("01")),
}


@pytest.mark.parametrize("name", list(DEEP))
def test_deep_nesting_raises(amf: ModuleType, name: str) -> None:
    version, data = DEEP[name]
    with pytest.raises(AMFDecodeError):
        amf.loads(data, version=version)
    # Just within the default limit (64) decodes.
    if name == "amf0-strict-arrays":
        got = amf.loads(h("0A 00000001") * 64 + h("05"))
        for _ in range(64):
            got = got[0]
        assert got is None
        with pytest.raises(AMFDecodeError):
            amf.loads(h("0A 00000001") * 65 + h("05"))


@pytest.mark.parametrize("name", ["amf0-strict-arrays", "amf3-arrays"])
def test_deep_nesting_at_the_highest_max_depth_never_crashes(amf: ModuleType, name: str) -> None:
    # The documented contract: any input gives a value or AMFDecodeError.
    # max_depth is capped (MAX_DEPTH_LIMIT) so that the C stack and Python's
    # recursion limit hold every level; run in a child process, since a C
    # stack overflow would kill the process.
    from rtmpx.amf import MAX_DEPTH_LIMIT

    with pytest.raises(ValueError):
        amf.loads(h("05"), max_depth=MAX_DEPTH_LIMIT + 1)
    version = DEEP[name][0]
    unit, tail = ((h("0A 00000001"), h("05")) if name == "amf0-strict-arrays"
                  else (h("09 03 01"), h("01")))
    code = textwrap.dedent(f"""
        import importlib, sys
        from rtmpx import AMFDecodeError
        m = importlib.import_module({amf.__name__!r})
        for depth, expect in (({DEPTH}, "AMFDecodeError"), ({MAX_DEPTH_LIMIT}, "value")):
            data = {unit!r} * depth + {tail!r}
            try:
                m.loads(data, version={version}, max_depth={MAX_DEPTH_LIMIT})
                print("value")
            except AMFDecodeError:
                print("AMFDecodeError")
            except BaseException as exc:
                print(type(exc).__name__)
        """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"child died with {proc.returncode}: {proc.stderr[-300:]}"
    assert proc.stdout.split() == ["AMFDecodeError", "value"], proc.stdout + proc.stderr[-300:]


def test_deep_nesting_dumps_raises(amf: ModuleType) -> None:
    nested: list[Any] = []
    for _ in range(DEPTH):
        nested = [nested]
    for version in (0, 3):
        with pytest.raises(AMFEncodeError):
            amf.dumps(nested, version=version)
    obj: dict[str, Any] = {}
    for _ in range(DEPTH):
        obj = {"a": obj}
    for version in (0, 3):
        with pytest.raises(AMFEncodeError):
            amf.dumps(obj, version=version)


@pytest.mark.parametrize("version, data, limit", [
    (0, h("02 0003 616263"), 3),            # string "abc"
    (0, h("0C 00000003 616263"), 3),        # long string
    (0, h("0F 00000003 616263"), 3),        # XML document
    (0, h("0A 00000003 05 05 05"), 3),      # strict array of 3
    (3, h("06 07 616263"), 3),              # string
    (3, h("07 07 616263"), 3),              # XMLDocument
    (3, h("0B 07 616263"), 3),              # XML
    (3, h("0C 07 616263"), 3),              # ByteArray
    (3, h("09 07 01 01 01 01"), 3),         # array of 3
    (3, h("0D 07 00 00000001 00000002 00000003"), 3),  # Vector.<int> of 3
    (3, h("0F 07 00") + h("3FF0000000000000") * 3, 3),
    (3, h("10 07 00 01 01 01 01"), 3),      # Vector.<Object> of 3
    (3, h("11 07 00 04 01 01 04 02 01 04 03 01"), 3),  # Dictionary of 3
], ids=lambda x: x.hex()[:16] if isinstance(x, bytes) else str(x))
def test_max_length(amf: ModuleType, version: int, data: bytes, limit: int) -> None:
    amf.loads(data, version=version, max_length=limit)  # at the limit: fine
    with pytest.raises(AMFDecodeError):
        amf.loads(data, version=version, max_length=limit - 1)


def test_max_length_bounds_amf0_keys(amf: ModuleType) -> None:
    # "max_length bounds every length" (rtmpx.amf): object keys included.
    data = h("03 0003 616263 05 000009")  # {"abc": null}
    assert amf.loads(data, max_length=3) == {"abc": None}
    with pytest.raises(AMFDecodeError):
        amf.loads(data, max_length=2)


OVERSIZED = [
    (0, h("0A FFFFFFFF")),              # strict array of 2^32-1 values
    (0, h("0A FFFFFFFF 05 05")),
    (0, h("0C FFFFFFFF 61")),           # long string
    (0, h("0F FFFFFFFF 61")),           # XML document
    (0, h("02 FFFF 61")),               # string
    (0, h("08 FFFFFFFF")),              # ECMA array (the count is a hint)
    (3, h("06 FF FF FF FF 61")),        # string of 2^28-1 bytes
    (3, h("07 FF FF FF FF")),           # XMLDocument
    (3, h("0B FF FF FF FF")),           # XML
    (3, h("0C FF FF FF FF 00")),        # ByteArray
    (3, h("09 FF FF FF FF 01")),        # array of 2^28-1 dense values
    (3, h("09 FF FF FF FF 01 01 01")),
    (3, h("0D FF FF FF FF 00 00000001")),  # Vector.<int>
    (3, h("0E FF FF FF FF 00")),
    (3, h("0F FF FF FF FF 00")),
    (3, h("10 FF FF FF FF 00 01 01")),     # Vector.<Object>
    (3, h("11 FF FF FF FF 00 01 01")),     # Dictionary
    (3, h("0A FF FF FF F3 01 03 61")),     # 2^25-1 sealed member names
    (3, h("0A FF FF FF FF")),              # externalizable, no class name
]


@pytest.mark.parametrize("version, data", OVERSIZED, ids=lambda x: x.hex() if isinstance(
    x, bytes) else str(x))
@pytest.mark.parametrize("max_length", [None, 2 ** 32])
def test_length_beyond_the_data_raises_without_allocating(
        amf: ModuleType, version: int, data: bytes, max_length: int | None) -> None:
    kwargs = {} if max_length is None else {"max_length": max_length}
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(AMFDecodeError):
            amf.loads(data, version=version, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 1 << 20, f"peak {peak} bytes traced while refusing {data.hex()}"


@pytest.mark.parametrize("version, data", [
    (0, h("07 0000")),                      # AMF0 2.9: empty table
    (0, h("0A 00000001 07 0001")),          # table holds only the array
    (0, h("0A 00000002 03 000009 07 0002")),
    (0, h("07 FFFF")),
    (3, h("06 00")),                        # string table empty
    (3, h("09 05 01 06 03 61 06 02")),      # string 1 of 1
    (3, h("09 05 01 06 01 06 00")),         # "" was not entered
    (3, h("0A 00")),                        # object table empty
    (3, h("09 03 01 0A 02")),               # object 1 of 1
    (3, h("09 03 01 09 02")),
    (3, h("07 00")), (3, h("08 00")), (3, h("0B 00")), (3, h("0C 00")),
    (3, h("0D 00")), (3, h("0E 00")), (3, h("0F 00")), (3, h("10 00")),
    (3, h("11 00")),
    (3, h("0A 01")),                        # traits table empty
    (3, h("09 05 01 0A 0B 01 01 0A 05 01")),  # traits 1 of 1
    (3, h("0A FF FF FF FD")),               # traits index 2^26-1
    (3, h("0A FF FF FF FC")),               # object index 2^27-2
    (3, h("06 FF FF FF FE")),               # string index 2^28-1
], ids=lambda x: x.hex() if isinstance(x, bytes) else str(x))
def test_reference_out_of_range_raises(amf: ModuleType, version: int, data: bytes) -> None:
    with pytest.raises(AMFDecodeError):
        amf.loads(data, version=version)


@pytest.mark.parametrize("version, data", [
    (0, h("02 0001 FF")),
    (0, h("02 0002 C328")),                 # bad continuation byte
    (0, h("02 0001 C3")),                   # sequence cut short
    (0, h("02 0003 EDA080")),               # a UTF-16 surrogate (U+D800)
    (0, h("02 0002 C080")),                 # overlong NUL
    (0, h("0C 00000001 FF")),
    (0, h("0F 00000001 FF")),
    (0, h("03 0001 FF 05 000009")),         # object key
    (0, h("08 00000001 0001 FF 05 000009")),
    (0, h("10 0001 FF 000009")),            # class name
    (3, h("06 03 FF")),
    (3, h("07 03 FF")),
    (3, h("0B 03 FF")),
    (3, h("0A 0B 01 03 FF 01 01")),         # dynamic key
    (3, h("0A 0B 03 FF 01")),               # class name
    (3, h("09 01 03 FF 01 01")),            # assoc key
    (3, h("10 01 00 03 FF")),               # vector type name
    (0, h("11 06 03 FF")),
], ids=lambda x: x.hex() if isinstance(x, bytes) else str(x))
def test_invalid_utf8_raises(amf: ModuleType, version: int, data: bytes) -> None:
    with pytest.raises(AMFDecodeError):
        amf.loads(data, version=version)


def test_decode_error_is_a_value_error() -> None:
    # One error family, decode errors also ValueErrors (docs/style.md).
    assert issubclass(AMFDecodeError, ValueError)


# --------------------------------------------- references and max_values

# The vectors that hold an object reference (AMF0 0x07; an AMF3 reference
# into the object table).  AMF3 string and traits references are not object
# references: a3-string-ref, a3-object-traits-ref and their kin are not here.
OBJECT_REFERENCES = {
    "a0-ref-same-dict-twice", "a0-ref-order-of-beginning", "a0-ref-ecma-array",
    "a0-ref-typed-object", "a0-ref-strict-array", "a0-ref-skips-amf3-values",
    "a3-object-ref", "a3-ref-xml", "a3-ref-xmldocument", "a3-ref-bytearray", "a3-ref-date",
    "a3-ref-array", "a3-ref-ecma", "a3-ref-mixed", "a3-ref-typed", "a3-ref-vector",
    "a3-ref-vector-object", "a3-ref-dictionary", "a3-ref-arraycollection",
    "a3-ref-index-order",
}


def shares_an_object(value: Any) -> bool:
    """Whether a decoded value holds one (non-scalar) object in two places."""
    seen: set[int] = set()

    def walk(v: Any) -> bool:
        if type(v) in (str, int, float, bool, type(None)) or v is UNDEFINED or v == b"":
            return False  # plain scalars may be shared (interned, cached) without references
        if id(v) in seen:
            return True
        seen.add(id(v))
        if isinstance(v, MixedArray):
            return walk(v.dense) or walk(v.assoc)
        if isinstance(v, dict):
            return any(walk(k) or walk(x) for k, x in v.items())
        if isinstance(v, list):
            return any(walk(x) for x in v)
        return False

    return walk(value)


def test_object_references_are_the_vectors_that_share_objects() -> None:
    # A check of the hand-written set against the decoded values.
    pure = importlib.import_module(PURE)
    sharing = {v.id for v in VECTORS if shares_an_object(pure.loads(v.data, version=v.version))}
    assert sharing == OBJECT_REFERENCES
    assert OBJECT_REFERENCES <= set(VECTOR_IDS)


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_references_false(amf: ModuleType, v: Vec) -> None:
    # What FFmpeg, OBS and Flash send decodes unchanged; any object
    # reference is refused.
    if v.id in OBJECT_REFERENCES:
        with pytest.raises(AMFDecodeError, match=r"references are not allowed \(references=False\)"):
            amf.loads(v.data, version=v.version, references=False)
        with pytest.raises(AMFDecodeError, match="references are not allowed"):
            amf.loads_all(v.data, version=v.version, references=False)
    else:
        got = amf.loads(v.data, version=v.version, references=False)
        assert_same(got, v.value)
        if v.check is not None:
            v.check(got)


@pytest.mark.parametrize("body", BODIES, ids=[b.id for b in BODIES])
def test_references_false_message_bodies(amf: ModuleType, body: Body) -> None:
    assert_same(amf.loads_all(body.data, references=False), body.values)


@pytest.mark.parametrize("version, data", [
    (0, h("0A 00000001  07 0000")),              # a list holding itself
    (0, h("03  0004 73656C66 07 0000  000009")),  # {"self": itself}
    (3, h("09 03 01  09 00")),
    (3, h("0A 0B 01  09 73656C66 0A 00  01")),
    (0, h("03 000009  07 0000")),                # loads_all: a later value, an earlier one
], ids=lambda x: x.hex() if isinstance(x, bytes) else str(x))
def test_references_false_refuses_cycles_and_back_references(
        amf: ModuleType, version: int, data: bytes) -> None:
    amf.loads_all(data, version=version)
    with pytest.raises(AMFDecodeError, match="references are not allowed"):
        amf.loads_all(data, version=version, references=False)


# (id, version, data, values): loads_all(data, max_values=values) decodes,
# values - 1 raises.  Each value counts 1, a container 1 plus its members;
# keys (member, class, trait names, a Vector's type name) count nothing; an
# object reference counts what it refers to in full, or 1 for a container
# still being read (a cycle); an AMF3 string reference is a string.
COUNTS = [
    ("a0-body-of-scalars", 0, h("02 0001 61  00 3FF0000000000000  05"), 3),
    ("a0-object-keys-free", 0, h("03  0001 61 00 3FF0000000000000  0001 62 02 0001 78  000009"),
     3),
    ("a0-ecma-keys-free", 0, h("08 00000001  0001 61 05  000009"), 2),
    ("a0-typed-class-name-free", 0, h("10 0003 466F6F  0001 78 05  000009"), 2),
    ("a0-date-xml-unsupported", 0, h("0A 00000003  0B 0000000000000000 0000  0F 00000000  0D"),
     4),
    ("a0-avmplus", 0, h("0A 00000001  11 0C 05 6162"), 2),
    # [{"a": 1.0}, ref]: 1 + 2 + 2
    ("a0-ref-expanded", 0,
     h("0A 00000002  03 0001 61 00 3FF0000000000000 000009  07 0001"), 5),
    # [[null, null], ref]: 1 + 3 + 3
    ("a0-ref-expanded-nested", 0, h("0A 00000002  0A 00000002 05 05  07 0001"), 7),
    # [[[null]], ref to the inner one]: 1 + 3 + 2
    ("a0-ref-to-inner", 0, h("0A 00000002  0A 00000001 0A 00000001 05  07 0002"), 6),
    ("a0-cycle-counts-1", 0, h("0A 00000001  07 0000"), 2),
    ("a0-object-cycle-counts-1", 0, h("03  0004 73656C66 07 0000  000009"), 2),
    # the count spans the call: {"a": null} then a reference to it
    ("a0-ref-across-values", 0, h("03 0001 61 05 000009  07 0000"), 4),
    ("a3-scalars", 3, h("09 0B 01  00 01 02 03 04 01"), 6),
    ("a3-string-ref-value-counts-1", 3, h("09 05 01  06 03 61  06 00"), 3),
    ("a3-string-ref-key-counts-0", 3, h("0A 0B 01  03 61 06 00  01"), 2),
    ("a3-traits-ref", 3, h("09 05 01  0A 0B 01 03 61 04 01 01  0A 01 00 04 02 01"), 5),
    ("a3-sealed", 3, h("0A 23 05 5074  03 78 03 79  04 01 04 02"), 3),
    ("a3-object-ref", 3, h("09 05 01  0A 0B 01 03 61 04 01 01  0A 02"), 5),
    ("a3-bytearray-ref", 3, h("09 05 01  0C 05 00FF  0C 02"), 3),
    ("a3-date-ref", 3, h("09 05 01  08 01 426D1A94A2000000  08 02"), 3),
    ("a3-xml-ref", 3, h("09 05 01  0B 09 3C612F3E  0B 02"), 3),
    ("a3-vector-int", 3, h("0D 05 00  80000000 7FFFFFFF"), 3),
    ("a3-vector-double-ref", 3, h("09 05 01  0F 05 00 3FF0000000000000 3FF0000000000000  0F 02"),
     7),
    ("a3-vector-object-type-name-free", 3, h("10 05 00  03 2A  06 03 61  04 01"), 3),
    ("a3-dictionary-keys-count", 3, h("11 03 00  06 03 61  04 01"), 3),
    ("a3-mixed", 3, h("09 03  03 61 04 02  01  04 01"), 3),
    ("a3-array-cycle-counts-1", 3, h("09 03 01  09 00"), 2),
    ("a3-object-cycle-counts-1", 3, h("0A 0B 01  09 73656C66 0A 00  01"), 2),
    # externalizable: the object, then what its class reads (an array of one)
    ("a3-arraycollection", 3, h("0A 07") + AC_NAME + h("09 03 01 04 01"), 3),
    ("a3-arraycollection-ref", 3, h("09 05 01  0A 07") + AC_NAME + h("09 01 01  0A 02"), 5),
    # list 0, {"o": []} 1, [] 2, then a reference to 2
    ("a3-ref-index-order", 3, h("09 05 01  0A 0B 01 03 6F 09 01 01 01  09 04"), 4),
]


@pytest.mark.parametrize("version, data, count", [c[1:] for c in COUNTS],
                         ids=[c[0] for c in COUNTS])
def test_max_values_counts_exactly(amf: ModuleType, version: int, data: bytes,
                                   count: int) -> None:
    got = amf.loads_all(data, version=version, max_values=count)
    assert repr(got) == repr(amf.loads_all(data, version=version))  # repr: cycles too
    with pytest.raises(AMFDecodeError, match=rf"more than {count - 1} values \(references "
                                             rf"expanded\): max_values={count - 1}$"):
        amf.loads_all(data, version=version, max_values=count - 1)
