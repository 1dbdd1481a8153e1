"""AMF0 and AMF3: the encodings of RTMP command and data messages.

::

    >>> from rtmpx import amf
    >>> amf.loads(amf.dumps({"app": "live"}))
    {'app': 'live'}
    >>> amf.loads_all(body)            # every value of a command message
    ['connect', 1.0, {...}]

Functions (each also takes ``registry=``, a :class:`ClassRegistry`):

* ``dumps(value, *, version=0, max_depth=64) -> bytes``: one value.
* ``loads(data, *, version=0, max_depth=64, max_length=16 MiB,
  max_values=1_000_000, references=True)``: exactly one value; trailing
  bytes raise :class:`~rtmpx.AMFDecodeError`.
* ``dumps_all(values, *, version=0, ...)`` / ``loads_all(data, ...) -> list``:
  values back to back, as in a command message body.

``data`` may be any buffer (bytes, bytearray, memoryview).  Reference tables
(AMF0 objects; AMF3 strings, objects and traits) live for one call; each
AMF0 "switch to AMF3" marker (0x11) starts a fresh AMF3 context.

Python mapping (both directions; ``loads(dumps(x)) == x``):

============================  ===================  =========================
Python                        AMF0                 AMF3
============================  ===================  =========================
``None``                      null                 null
``UNDEFINED``                 undefined            undefined
``bool``                      boolean              false / true
``int``                       number (a float)     integer when it fits 29
                                                   bits, else double
``float`` (``-0.0`` kept)     number               double
``str``                       string, long string  string
                              above 65535 bytes
``dict`` (str keys)           anonymous object     dynamic anonymous object
``ECMAArray`` (dict)          ECMA array           array, named keys only
``list`` / ``tuple``          strict array         dense array
``TypedObject(name, map)``    typed object         dynamic typed object
aware ``datetime``            date (UTC, tz 0)     date
``XMLDocument`` (str)         XML document         XMLDocument
``XML`` (str)                 AMF3 via 0x11        XML
``bytes`` / ``bytearray``     AMF3 via 0x11        ByteArray (decodes to bytes)
``Vector`` (list)             AMF3 via 0x11        Vector.<int|uint|Number|Object>
``Dictionary`` (dict)         AMF3 via 0x11        Dictionary
``MixedArray(dense, assoc)``  AMF3 via 0x11        array with both parts
``UNSUPPORTED``               unsupported          (no form: AMFEncodeError)
registered class              typed object         typed / externalizable
============================  ===================  =========================

AMF0 numbers decode to ``float``; AMF3 integers to ``int``.  Dates decode to
UTC datetimes with millisecond precision (AMF carries ms as a double).  An
AMF3 array with neither dense nor named entries decodes to ``[]``.  The
same object (identity) written twice becomes a reference.

Security: nothing named by the wire is imported or instantiated.  Class
names map to Python types only through an explicit :class:`ClassRegistry`
(:data:`DEFAULT_REGISTRY` knows Flex's ArrayCollection and ObjectProxy);
other typed objects decode to :class:`TypedObject`, and an unregistered
externalizable class is an error.  XML stays text.  ``max_depth`` bounds
nesting (decode and encode; at most ``MAX_DEPTH_LIMIT``, 256, so that the
stack holds every level), ``max_length`` bounds every length, and no length
is trusted beyond the bytes that actually remain; reference indexes are
checked against their tables.  Any input gives a value or
:class:`~rtmpx.AMFDecodeError`.

References are the other way to make a small message large: an object
reference (AMF0 marker 0x07; an AMF3 reference into the object table, to an
object, array, date, XML, ByteArray, vector or dictionary) shares a value
already decoded, so that a few hundred bytes can decode into a structure
with 2**40 paths, which any walk of it (``repr``, JSON, re-encoding) then
follows for hours.  Two decode settings bound that:

* ``max_values`` (default :data:`DEFAULT_MAX_VALUES`, 1_000_000; at least
  1) bounds the number of values one call produces (``loads_all``: all its
  values together), each reference counted as the whole value it refers to.
  Every value counts 1: number, string, boolean, null, undefined, date, XML,
  ByteArray, each number of a numeric Vector, and each container itself,
  plus its members; member names, class names, trait names and a Vector's
  type name are keys and do not count (a Dictionary's keys are values and
  do).  A reference counts the expanded size of what it refers to,
  or 1 if that container is still being decoded (a cycle).  AMF3 string and
  traits references are not object references: a string counts 1 as a
  value and 0 as a key, either way, and a string *reference* also costs one
  value per 64 characters of the string it repeats (so that repeating a
  64 KiB string a million times, 64 GB of text for a walk that re-encodes
  it, is refused).  Past the bound, the call raises
  AMFDecodeError, never a partial result; an array, Vector or Dictionary
  whose length alone is past it is refused at its header, before anything
  is allocated for it.  A walk of the result that stops
  at cycles (as ``repr`` and ``json`` do) meets at most ``max_values``
  values.
* ``references=False`` refuses every object reference with AMFDecodeError.
  FFmpeg, OBS and Flash Player never write references in command or data
  message bodies; a server can decode those with ``references=False``.

Set ``RTMPX_PUREPYTHON=1`` to use the pure-Python twin instead of the
compiled core; :func:`implementation` tells which one is in use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._amf_types import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_VALUES,
    DEFAULT_REGISTRY,
    MAX_DEPTH_LIMIT,
    UNDEFINED,
    UNSUPPORTED,
    XML,
    ArrayCollection,
    ClassAlias,
    ClassRegistry,
    Dictionary,
    ECMAArray,
    ExternalReader,
    ExternalWriter,
    MixedArray,
    ObjectProxy,
    TypedObject,
    Undefined,
    Unsupported,
    Vector,
    XMLDocument,
)
from .errors import AMFDecodeError, AMFEncodeError

if not TYPE_CHECKING and os.environ.get("RTMPX_PUREPYTHON") == "1":
    from ._amf_py import dumps, dumps_all, loads, loads_all
    _IMPLEMENTATION = "python"
else:
    from ._amf import dumps, dumps_all, loads, loads_all
    _IMPLEMENTATION = "cython"


def implementation() -> str:
    """``"cython"`` for the compiled core, ``"python"`` for the pure twin."""
    return _IMPLEMENTATION


__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_MAX_VALUES",
    "DEFAULT_REGISTRY",
    "MAX_DEPTH_LIMIT",
    "UNDEFINED",
    "UNSUPPORTED",
    "XML",
    "AMFDecodeError",
    "AMFEncodeError",
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
    "dumps",
    "dumps_all",
    "implementation",
    "loads",
    "loads_all",
]
