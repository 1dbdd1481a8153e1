# cython: language_level=3
"""Compiled AMF0/AMF3 codec: the fast twin of :mod:`rtmpx._amf_py`.

Same API, same bytes, same values.  Encoding writes into one growable C
buffer and makes one ``bytes`` at the end; decoding reads a
``const unsigned char*`` over the caller's buffer with an explicit length
check before every read, and makes one Python object per AMF value.  Use
:mod:`rtmpx.amf`, which documents the Python mapping and the limits.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.float cimport PyFloat_FromDouble
from cpython.list cimport PyList_Append, PyList_GET_SIZE, PyList_SET_ITEM
from cpython.long cimport PyLong_FromVoidPtr
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport (
    INT64_MAX, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

from datetime import datetime

from rtmpx._amf_types import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_VALUES,
    DEFAULT_REGISTRY,
    MAX_DEPTH_LIMIT,
    UNDEFINED,
    UNSUPPORTED,
    Dictionary,
    ECMAArray,
    MixedArray,
    TypedObject,
    Undefined,
    Unsupported,
    Vector,
    XMLDocument,
    XML,
    datetime_to_ms,
    ms_to_datetime,
)
from rtmpx.errors import AMFDecodeError, AMFEncodeError

cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(PyObject* s)
    bint PyUnicode_IS_COMPACT_ASCII(PyObject* s)
    void* PyUnicode_DATA(PyObject* s)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA_OBJ "PyUnicode_DATA" (object s)
    void Py_XDECREF(PyObject* o)
    PyObject* PyList_GET_ITEM_PTR "PyList_GET_ITEM" (object lst, Py_ssize_t i)
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    bint PyUnicode_CheckExact(object o)
    bint PyUnicode_Check(object o)
    bint PyFloat_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyBool_Check(object o)
    bint PyDict_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1

__all__ = ["dumps", "loads", "dumps_all", "loads_all"]

cdef object _UNDEFINED = UNDEFINED
cdef object _UNSUPPORTED = UNSUPPORTED
cdef object _ECMAArray = ECMAArray
cdef object _TypedObject = TypedObject
cdef object _XMLDocument = XMLDocument
cdef object _XML = XML
cdef object _Vector = Vector
cdef object _Dictionary = Dictionary
cdef object _MixedArray = MixedArray
cdef object _datetime = datetime
cdef object _IN_PROGRESS = object()

cdef frozenset _NATIVE = frozenset({
    str, float, int, bool, type(None), dict, list, tuple, bytes, bytearray, memoryview,
    datetime, ECMAArray, TypedObject, XMLDocument, XML, Vector, Dictionary, MixedArray,
    Undefined, Unsupported,
})
cdef tuple _AMF3_ONLY = (bytes, bytearray, memoryview, XML, Vector, Dictionary, MixedArray)
cdef dict _VECTOR_MARKERS = {"int": 0x0D, "uint": 0x0E, "double": 0x0F, "object": 0x10}


cdef int _MAX_DEPTH_LIMIT = MAX_DEPTH_LIMIT


cdef inline int _check_args(int version, int max_depth) except -1:
    if version != 0 and version != 3:
        raise ValueError(f"AMF version must be 0 or 3, not {version!r}")
    if not 1 <= max_depth <= _MAX_DEPTH_LIMIT:
        raise ValueError(f"max_depth must be 1..{_MAX_DEPTH_LIMIT}, not {max_depth!r}")
    return 0


cdef object _DEFAULT_MAX_VALUES = DEFAULT_MAX_VALUES
cdef int64_t _DEFAULT_BUDGET = DEFAULT_MAX_VALUES


cdef inline int64_t _check_budget(object max_values, object references) except -1:
    """Validate the decode budget; the limit in effect (at most 2**63-1)."""
    cdef int64_t n
    if max_values is _DEFAULT_MAX_VALUES:  # the default: no conversion per call
        n = _DEFAULT_BUDGET
    else:
        n = _max_values(max_values)
    if references is not True and references is not False:
        raise TypeError(f"references must be True or False, not {type(references).__name__!r}")
    return n


cdef int64_t _max_values(object max_values) except -1:
    cdef int overflow
    cdef long long n
    if not PyLong_CheckExact(max_values):
        if isinstance(max_values, bool) or not isinstance(max_values, int):
            raise TypeError(f"max_values must be an int, not {type(max_values).__name__!r}")
    n = PyLong_AsLongLongAndOverflow(max_values, &overflow)
    if overflow < 0 or (overflow == 0 and n < 1):
        raise ValueError(f"max_values must be at least 1, not {max_values!r}")
    return INT64_MAX if overflow > 0 else n


# --- byte order ----------------------------------------------------------

cdef inline uint16_t _ld16(const unsigned char* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]

cdef inline uint32_t _ld32(const unsigned char* p) noexcept nogil:
    return ((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16)
            | (<uint32_t>p[2] << 8) | p[3])

cdef inline double _ld_double(const unsigned char* p) noexcept nogil:
    cdef uint64_t x = ((<uint64_t>_ld32(p) << 32) | _ld32(p + 4))
    cdef double d
    memcpy(&d, &x, 8)
    return d

cdef inline void _st32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = v >> 24
    p[1] = v >> 16
    p[2] = v >> 8
    p[3] = v

cdef inline void _st_double(unsigned char* p, double d) noexcept nogil:
    cdef uint64_t x
    memcpy(&x, &d, 8)
    _st32(p, <uint32_t>(x >> 32))
    _st32(p + 4, <uint32_t>x)


# --- strings -------------------------------------------------------------
# Nearly every AMF string is ASCII.  Checking that a word at a time and
# copying the bytes into a new str skips the generic UTF-8 decoder's setup;
# anything else (and "" and 1-character strings, which CPython shares) goes
# through PyUnicode_DecodeUTF8, which also raises on invalid UTF-8.

cdef inline bint _is_ascii(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t acc = 0
    cdef uint64_t word
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&word, p + i, 8)
        acc |= word
        i += 8
    while i < n:
        acc |= p[i]
        i += 1
    return (acc & 0x8080808080808080u) == 0


cdef inline str _utf8(const unsigned char* p, Py_ssize_t n):
    """The str for the UTF-8 bytes p[:n] (the caller has checked n)."""
    cdef str s
    if n > 1 and _is_ascii(p, n):
        s = PyUnicode_New(n, 127)
        memcpy(PyUnicode_DATA_OBJ(s), p, n)
        return s
    return PyUnicode_DecodeUTF8(<const char*>p, n, NULL)


# --- object keys ---------------------------------------------------------
# AMF0 repeats member names in full for every object, AMF3 in every message;
# most are short ASCII names from a small set ("app", "tcUrl", "duration",
# ...).  A small direct-mapped cache of str objects makes a repeated key cost
# a hash and a compare instead of an allocation and a UTF-8 decode (and the
# dict insertion reuses the cached str's hash).  The hash reads a few
# unaligned words, not every byte; a collision only costs a miss.

DEF _KEY_CACHE_SIZE = 512
DEF _KEY_CACHE_MAX_LEN = 32
cdef PyObject* _key_cache[_KEY_CACHE_SIZE]


cdef inline uint64_t _ld64_native(const unsigned char* p) noexcept nogil:
    cdef uint64_t x
    memcpy(&x, p, 8)
    return x


cdef inline uint32_t _key_hash(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """A slot for the key p[:n], 0 < n <= _KEY_CACHE_MAX_LEN."""
    cdef uint64_t a, b
    cdef uint32_t a32, b32
    if n >= 8:
        a = _ld64_native(p)
        b = _ld64_native(p + n - 8)
        if n > 16:
            a ^= _ld64_native(p + 8) * 0x9E3779B97F4A7C15u
            b ^= _ld64_native(p + n - 16) * 0xC2B2AE3D27D4EB4Fu
    elif n >= 4:
        memcpy(&a32, p, 4)
        memcpy(&b32, p + n - 4, 4)
        a = a32
        b = b32
    elif n > 0:
        a = p[0] | (<uint64_t>p[n >> 1] << 8) | (<uint64_t>p[n - 1] << 16)
        b = 0
    else:
        return 0
    a = (a * 0x9E3779B97F4A7C15u) ^ (b * 0xC2B2AE3D27D4EB4Fu) ^ <uint64_t>n
    return <uint32_t>((a ^ (a >> 29)) * 0x165667B19E3779F9u >> 55) & (_KEY_CACHE_SIZE - 1)


cdef inline bint _same_bytes(const unsigned char* a, const unsigned char* b,
                             Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        if _ld64_native(a + i) != _ld64_native(b + i):
            return False
        i += 8
    while i < n:
        if a[i] != b[i]:
            return False
        i += 1
    return True


cdef inline str _cached_key(const unsigned char* p, Py_ssize_t n):
    """The str for the UTF-8 bytes p[:n], from the cache when it is there."""
    cdef uint32_t slot = _key_hash(p, n)
    cdef PyObject* hit = _key_cache[slot]
    if (hit != NULL and PyUnicode_GET_LENGTH(hit) == n
            and _same_bytes(<const unsigned char*>PyUnicode_DATA(hit), p, n)):
        return <str>hit
    key = _utf8(p, n)
    if PyUnicode_IS_COMPACT_ASCII(<PyObject*>key):
        Py_INCREF(key)
        Py_XDECREF(hit)
        _key_cache[slot] = <PyObject*>key
    return key


# --- encoding ------------------------------------------------------------

cdef object _utf8_error(object exc):
    return AMFEncodeError(f"string is not encodable as UTF-8: {exc}")


@cython.final
cdef class _Encoder:
    cdef unsigned char* buf
    cdef Py_ssize_t size
    cdef Py_ssize_t cap
    cdef object registry
    cdef int max_depth
    cdef int depth
    cdef list keep
    cdef dict refs0
    cdef Py_ssize_t count0
    cdef dict strings3
    cdef dict objects3
    cdef Py_ssize_t count3
    cdef dict traits3

    def __cinit__(self):
        self.cap = 256
        self.buf = <unsigned char*>malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()
        self.size = 0

    def __dealloc__(self):
        free(self.buf)

    cdef init(self, object registry, int max_depth):
        self.registry = DEFAULT_REGISTRY if registry is None else registry
        self.max_depth = max_depth
        self.depth = 0
        self.keep = []
        self.refs0 = {}
        self.count0 = 0
        self.new_amf3_context()

    cdef inline void new_amf3_context(self):
        self.strings3 = {}
        self.objects3 = {}
        self.count3 = 0
        self.traits3 = {}

    cdef bytes result(self):
        return PyBytes_FromStringAndSize(<char*>self.buf, self.size)

    # buffer primitives

    cdef int grow(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap = self.cap
        cdef unsigned char* buf
        while cap - self.size < n:
            if cap > (<Py_ssize_t>1 << 40):
                raise MemoryError()
            cap *= 2
        buf = <unsigned char*>realloc(self.buf, cap)
        if buf == NULL:
            raise MemoryError()
        self.buf = buf
        self.cap = cap
        return 0

    cdef inline unsigned char* reserve(self, Py_ssize_t n) except NULL:
        if self.cap - self.size < n:
            self.grow(n)
        cdef unsigned char* p = self.buf + self.size
        self.size += n
        return p

    cdef inline int byte(self, unsigned char b) except -1:
        self.reserve(1)[0] = b
        return 0

    cdef inline int raw(self, const char* data, Py_ssize_t n) except -1:
        memcpy(self.reserve(n), data, n)
        return 0

    cdef inline int marker_double(self, unsigned char marker, double d) except -1:
        cdef unsigned char* p = self.reserve(9)
        p[0] = marker
        _st_double(p + 1, d)
        return 0

    cdef inline int marker_u16(self, unsigned char marker, uint32_t v) except -1:
        cdef unsigned char* p = self.reserve(3)
        p[0] = marker
        p[1] = v >> 8
        p[2] = v
        return 0

    cdef inline int marker_u32(self, unsigned char marker, uint32_t v) except -1:
        cdef unsigned char* p = self.reserve(5)
        p[0] = marker
        _st32(p + 1, v)
        return 0

    cdef inline int enter(self) except -1:
        self.depth += 1
        if self.depth > self.max_depth:
            raise AMFEncodeError(f"value nested deeper than max_depth={self.max_depth}")
        return 0

    cdef object alias_of(self, object v):
        cdef object t = type(v)
        if t in _NATIVE:
            return None
        return self.registry.by_type(t)

    # AMF0

    cdef int write0(self, object v) except -1:
        cdef const char* data
        cdef Py_ssize_t n
        # exact builtin types first: the common case, no registry look-up
        if PyUnicode_CheckExact(v):
            try:
                data = PyUnicode_AsUTF8AndSize(v, &n)
            except UnicodeEncodeError as exc:
                raise _utf8_error(exc) from None
            if n <= 0xFFFF:
                self.marker_u16(0x02, <uint32_t>n)
            elif n <= 0xFFFFFFFF:
                self.marker_u32(0x0C, <uint32_t>n)
            else:
                raise AMFEncodeError("string longer than 2**32-1 bytes")
            return self.raw(data, n)
        if PyFloat_CheckExact(v):
            return self.marker_double(0x00, <double>v)
        if v is None:
            return self.byte(0x05)
        if PyBool_Check(v):
            self.byte(0x01)
            return self.byte(1 if v is True else 0)
        if PyLong_CheckExact(v):
            return self.marker_double(0x00, _to_double(v))
        if PyDict_CheckExact(v):
            if self.ref0(v):
                return 0
            self.byte(0x03)
            return self.members0(v)
        if PyList_CheckExact(v) or PyTuple_CheckExact(v):
            return self.array0(v)
        return self.write0_other(v)

    cdef int write0_other(self, object v) except -1:
        cdef object alias = self.alias_of(v)
        cdef const char* data
        cdef Py_ssize_t n
        if alias is not None:
            if alias.externalizable:
                return self.switch3(v)
            return self.typed0(v, alias.alias, alias.to_dict(v))
        if v is _UNDEFINED:
            return self.byte(0x06)
        if v is _UNSUPPORTED:
            return self.byte(0x0D)
        if isinstance(v, bool):
            self.byte(0x01)
            return self.byte(1 if v else 0)
        if isinstance(v, (int, float)):
            return self.marker_double(0x00, _to_double(v))
        if isinstance(v, _XMLDocument):
            data = _as_utf8(v, &n)
            if n > 0xFFFFFFFF:
                raise AMFEncodeError("XML document longer than 2**32-1 bytes")
            self.marker_u32(0x0F, <uint32_t>n)
            return self.raw(data, n)
        if isinstance(v, _XML):
            return self.switch3(v)
        if isinstance(v, str):
            data = _as_utf8(v, &n)
            if n <= 0xFFFF:
                self.marker_u16(0x02, <uint32_t>n)
            elif n <= 0xFFFFFFFF:
                self.marker_u32(0x0C, <uint32_t>n)
            else:
                raise AMFEncodeError("string longer than 2**32-1 bytes")
            return self.raw(data, n)
        if isinstance(v, _TypedObject):
            return self.typed0(v, v.class_name, v)
        if isinstance(v, _ECMAArray):
            if self.ref0(v):
                return 0
            self.marker_u32(0x08, <uint32_t>len(v))
            return self.members0(v)
        if isinstance(v, _Dictionary):
            return self.switch3(v)
        if isinstance(v, dict):
            if self.ref0(v):
                return 0
            self.byte(0x03)
            return self.members0(v)
        if isinstance(v, _Vector):
            return self.switch3(v)
        if isinstance(v, (list, tuple)):
            return self.array0(v)
        if isinstance(v, _datetime):
            self.marker_double(0x0B, datetime_to_ms(v))
            self.byte(0)
            return self.byte(0)
        if isinstance(v, _AMF3_ONLY):
            return self.switch3(v)
        raise AMFEncodeError(f"cannot encode {type(v).__name__!r} as AMF0")

    cdef int array0(self, object v) except -1:
        if self.ref0(v):
            return 0
        self.marker_u32(0x0A, <uint32_t>len(v))
        self.enter()
        for item in v:
            self.write0(item)
        self.depth -= 1
        return 0

    cdef bint ref0(self, object v) except -1:
        cdef object key = PyLong_FromVoidPtr(<void*>v)
        cdef PyObject* index = PyDict_GetItem(self.refs0, key)
        if index != NULL:
            self.marker_u16(0x07, <uint32_t>(<object>index))
            return True
        if self.count0 <= 0xFFFF:
            self.refs0[key] = self.count0
            self.keep.append(v)
        self.count0 += 1
        return False

    cdef int typed0(self, object v, object class_name, object members) except -1:
        if self.ref0(v):
            return 0
        self.byte(0x10)
        self.key0(class_name)
        return self.members0(members)

    cdef int key0(self, object key) except -1:
        cdef const char* data
        cdef Py_ssize_t n
        if not PyUnicode_Check(key):
            raise AMFEncodeError(f"AMF object keys must be str, not {type(key).__name__!r}")
        data = _as_utf8(key, &n)
        if n > 0xFFFF:
            raise AMFEncodeError("AMF0 key or class name longer than 65535 bytes")
        cdef unsigned char* p = self.reserve(2)
        p[0] = n >> 8
        p[1] = n
        return self.raw(data, n)

    cdef int members0(self, object mapping) except -1:
        self.enter()
        if PyDict_CheckExact(mapping) or isinstance(mapping, dict):
            for key, value in (<dict>mapping).items():
                if not key:
                    raise AMFEncodeError("AMF object keys must not be empty")
                self.key0(key)
                self.write0(value)
        else:
            for key, value in mapping.items():
                if not key:
                    raise AMFEncodeError("AMF object keys must not be empty")
                self.key0(key)
                self.write0(value)
        self.raw(b"\x00\x00\x09", 3)
        self.depth -= 1
        return 0

    cdef int switch3(self, object v) except -1:
        cdef dict strings3 = self.strings3
        cdef dict objects3 = self.objects3
        cdef Py_ssize_t count3 = self.count3
        cdef dict traits3 = self.traits3
        self.new_amf3_context()
        self.byte(0x11)
        self.write3(v)
        self.strings3 = strings3
        self.objects3 = objects3
        self.count3 = count3
        self.traits3 = traits3
        return 0

    # AMF3

    cdef int u29(self, uint32_t n) except -1:
        cdef unsigned char* p
        if n < 0x80:
            return self.byte(<unsigned char>n)
        if n < 0x4000:
            p = self.reserve(2)
            p[0] = (n >> 7) | 0x80
            p[1] = n & 0x7F
        elif n < 0x200000:
            p = self.reserve(3)
            p[0] = (n >> 14) | 0x80
            p[1] = ((n >> 7) & 0x7F) | 0x80
            p[2] = n & 0x7F
        elif n < 0x20000000:
            p = self.reserve(4)
            p[0] = (n >> 22) | 0x80
            p[1] = ((n >> 15) & 0x7F) | 0x80
            p[2] = ((n >> 8) & 0x7F) | 0x80
            p[3] = n & 0xFF
        else:
            raise AMFEncodeError(f"length or reference {n} too large for AMF3 (U29)")
        return 0

    cdef int length3(self, Py_ssize_t n) except -1:
        if n > 0x0FFFFFFF:
            raise AMFEncodeError(f"AMF3 length {n} above 2**28-1")
        return self.u29(<uint32_t>((n << 1) | 1))

    cdef int string3(self, object s) except -1:
        cdef const char* data
        cdef Py_ssize_t n
        cdef PyObject* index
        if not s:
            return self.byte(0x01)
        index = PyDict_GetItem(self.strings3, s)
        if index != NULL:
            return self.u29(<uint32_t>(<object>index) << 1)
        data = _as_utf8(s, &n)
        self.length3(n)
        self.raw(data, n)
        self.strings3[s] = len(self.strings3)
        return 0

    cdef bint ref3(self, object v) except -1:
        cdef object key = PyLong_FromVoidPtr(<void*>v)
        cdef PyObject* index = PyDict_GetItem(self.objects3, key)
        if index != NULL:
            self.u29(<uint32_t>(<object>index) << 1)
            return True
        self.objects3[key] = self.count3
        self.count3 += 1
        self.keep.append(v)
        return False

    cdef int write_traits3(self, object class_name, bint dynamic, bint external) except -1:
        cdef object key = (class_name, dynamic, external)
        cdef PyObject* index = PyDict_GetItem(self.traits3, key)
        if index != NULL:
            return self.u29((<uint32_t>(<object>index) << 2) | 0x01)
        self.traits3[key] = len(self.traits3)
        self.u29((0x08 if dynamic else 0) | (0x04 if external else 0) | 0x03)
        return self.string3(class_name)

    cdef int assoc3(self, object mapping) except -1:
        for key, value in mapping.items():
            if not PyUnicode_Check(key):
                raise AMFEncodeError(f"AMF object keys must be str, not {type(key).__name__!r}")
            if not key:
                raise AMFEncodeError("AMF object keys must not be empty")
            self.string3(key)
            self.write3(value)
        return self.byte(0x01)

    cdef int write3(self, object v) except -1:
        cdef long long i
        cdef int overflow
        if PyUnicode_CheckExact(v):
            self.byte(0x06)
            return self.string3(v)
        if PyFloat_CheckExact(v):
            return self.marker_double(0x05, <double>v)
        if v is None:
            return self.byte(0x01)
        if PyBool_Check(v):
            return self.byte(0x03 if v is True else 0x02)
        if PyLong_CheckExact(v):
            i = PyLong_AsLongLongAndOverflow(v, &overflow)
            if overflow == 0 and -0x10000000 <= i <= 0x0FFFFFFF:
                self.byte(0x04)
                return self.u29(<uint32_t>(i & 0x1FFFFFFF))
            return self.marker_double(0x05, _to_double(v))
        if PyDict_CheckExact(v):
            self.byte(0x0A)
            if self.ref3(v):
                return 0
            self.enter()
            self.write_traits3("", True, False)
            self.assoc3(v)
            self.depth -= 1
            return 0
        if PyList_CheckExact(v) or PyTuple_CheckExact(v):
            return self.array3(v)
        return self.write3_other(v)

    cdef int array3(self, object v) except -1:
        self.byte(0x09)
        if self.ref3(v):
            return 0
        self.enter()
        self.length3(len(v))
        self.byte(0x01)  # no associative part
        for item in v:
            self.write3(item)
        self.depth -= 1
        return 0

    cdef int write3_other(self, object v) except -1:
        cdef object alias = self.alias_of(v)
        cdef const char* data
        cdef Py_ssize_t n
        if alias is not None:
            self.byte(0x0A)
            if self.ref3(v):
                return 0
            self.enter()
            if alias.externalizable:
                self.write_traits3(alias.alias, False, True)
                alias.write(v, _ExternalWriter(self))
            else:
                self.write_traits3(alias.alias, True, False)
                members = alias.to_dict(v)
                self.keep.append(members)
                self.assoc3(members)
            self.depth -= 1
            return 0
        if v is _UNDEFINED:
            return self.byte(0x00)
        if isinstance(v, bool):
            return self.byte(0x03 if v else 0x02)
        if isinstance(v, int):
            if -0x10000000 <= v <= 0x0FFFFFFF:
                self.byte(0x04)
                return self.u29(<uint32_t>(int(v) & 0x1FFFFFFF))
            return self.marker_double(0x05, _to_double(v))
        if isinstance(v, float):
            return self.marker_double(0x05, <double>v)
        if isinstance(v, (_XMLDocument, _XML)):
            self.byte(0x07 if isinstance(v, _XMLDocument) else 0x0B)
            if self.ref3(v):
                return 0
            data = _as_utf8(v, &n)
            self.length3(n)
            return self.raw(data, n)
        if isinstance(v, str):
            self.byte(0x06)
            return self.string3(v)
        if isinstance(v, _TypedObject):
            self.byte(0x0A)
            if self.ref3(v):
                return 0
            self.enter()
            self.write_traits3(v.class_name, True, False)
            self.assoc3(v)
            self.depth -= 1
            return 0
        if isinstance(v, _ECMAArray):
            self.byte(0x09)
            if self.ref3(v):
                return 0
            self.enter()
            self.byte(0x01)  # no dense part
            self.assoc3(v)
            self.depth -= 1
            return 0
        if isinstance(v, _Dictionary):
            self.byte(0x11)
            if self.ref3(v):
                return 0
            self.enter()
            self.length3(len(v))
            self.byte(0x01 if v.weak_keys else 0x00)
            for key, value in v.items():
                self.write3(key)
                self.write3(value)
            self.depth -= 1
            return 0
        if isinstance(v, dict):
            self.byte(0x0A)
            if self.ref3(v):
                return 0
            self.enter()
            self.write_traits3("", True, False)
            self.assoc3(v)
            self.depth -= 1
            return 0
        if isinstance(v, _Vector):
            return self.vector3(v)
        if isinstance(v, (list, tuple)):
            return self.array3(v)
        if isinstance(v, _MixedArray):
            self.byte(0x09)
            if self.ref3(v):
                return 0
            self.enter()
            self.length3(len(v.dense))
            self.assoc3(v.assoc)
            for item in v.dense:
                self.write3(item)
            self.depth -= 1
            return 0
        if isinstance(v, _datetime):
            self.byte(0x08)
            if self.ref3(v):
                return 0
            return self.marker_double(0x01, datetime_to_ms(v))
        if isinstance(v, (bytes, bytearray, memoryview)):
            self.byte(0x0C)
            if self.ref3(v):
                return 0
            return self.byte_array3(v)
        if v is _UNSUPPORTED:
            raise AMFEncodeError("AMF3 has no 'unsupported' value")
        raise AMFEncodeError(f"cannot encode {type(v).__name__!r} as AMF3")

    cdef int byte_array3(self, object v) except -1:
        cdef Py_buffer view
        PyObject_GetBuffer(v, &view, PyBUF_SIMPLE)
        try:
            self.length3(view.len)
            self.raw(<const char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return 0

    cdef int vector3(self, object v) except -1:
        cdef str kind = v.kind
        cdef Py_ssize_t n = len(v)
        cdef unsigned char* p
        cdef long long item
        self.byte(_VECTOR_MARKERS[kind])
        if self.ref3(v):
            return 0
        self.length3(n)
        self.byte(0x01 if v.fixed else 0x00)
        if kind == "object":
            self.enter()
            self.string3(v.type_name)
            for obj in v:
                self.write3(obj)
            self.depth -= 1
            return 0
        if kind == "double":
            for obj in v:
                try:
                    _st_double(self.reserve(8), obj)
                except (TypeError, OverflowError) as exc:
                    raise AMFEncodeError(f"Vector.<double> item out of range: {exc}") from None
            return 0
        for obj in v:
            try:
                item = obj
            except (TypeError, OverflowError) as exc:
                raise AMFEncodeError(f"Vector.<{kind}> item out of range: {exc}") from None
            if kind == "int":
                if not -0x80000000 <= item <= 0x7FFFFFFF:
                    raise AMFEncodeError(f"Vector.<int> item out of range: {item}")
            elif not 0 <= item <= 0xFFFFFFFF:
                raise AMFEncodeError(f"Vector.<uint> item out of range: {item}")
            _st32(self.reserve(4), <uint32_t>item)
        return 0


@cython.final
cdef class _ExternalWriter:
    """What an externalizable class's ``write`` sees of the encoder."""

    cdef _Encoder _enc

    def __cinit__(self, _Encoder enc):
        self._enc = enc

    def write_value(self, value):
        self._enc.write3(value)

    def write_bytes(self, data):
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._enc.raw(<const char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)


cdef const char* _as_utf8(object s, Py_ssize_t* n) except NULL:
    try:
        return PyUnicode_AsUTF8AndSize(s, n)
    except UnicodeEncodeError as exc:
        raise _utf8_error(exc) from None


cdef double _to_double(object v) except? -1.0:
    try:
        return float(v)
    except OverflowError:
        raise AMFEncodeError("integer too large for an AMF number (double)") from None


def dumps(value, *, int version=0, int max_depth=DEFAULT_MAX_DEPTH, registry=None):
    """Encode one value as AMF0 (``version=0``) or AMF3 (``version=3``)."""
    _check_args(version, max_depth)
    cdef _Encoder enc = _Encoder.__new__(_Encoder)
    enc.init(registry, max_depth)
    if version == 0:
        enc.write0(value)
    else:
        enc.write3(value)
    return enc.result()


def dumps_all(values, *, int version=0, int max_depth=DEFAULT_MAX_DEPTH, registry=None):
    """Encode a sequence of values back to back (a command message body)."""
    _check_args(version, max_depth)
    cdef _Encoder enc = _Encoder.__new__(_Encoder)
    enc.init(registry, max_depth)
    for value in values:
        if version == 0:
            enc.write0(value)
        else:
            enc.write3(value)
    return enc.result()


# --- decoding ------------------------------------------------------------

# The value budget (max_values).  ``left`` is how many more values the call
# may produce: each value takes 1 (member names, class names and trait names
# are keys and take nothing), a container takes 1 and its members their own.
# Each reference-table entry has its expanded size in a C array parallel to
# the table (``sizes0`` to ``refs0``, ``sizes3`` to ``objects3``): 0 while a
# container is being read, then what the budget went down by while it was
# read.  An object reference takes that size, or 1 for 0 (a cycle).  The
# sizes never exceed the limit, so nothing overflows: every subtraction is
# checked against ``left`` first.

DEF _SIZES_INLINE = 8  # entries kept in the decoder object (which stays under
                       # pymalloc's 512-byte limit: no system malloc per call)
DEF _AMF0_MAX_INDEX = 0xFFFF  # an AMF0 reference is a U16: later entries need no size


cdef int _grow_sizes(int64_t** data, Py_ssize_t* cap, int64_t* inline_,
                     Py_ssize_t index) except -1:
    """Make room for entry ``index`` of a size table (rare: past 8 entries)."""
    cdef Py_ssize_t new_cap = cap[0]
    cdef int64_t* grown
    while new_cap <= index:
        new_cap *= 2
    if data[0] == inline_:
        grown = <int64_t*>malloc(new_cap * sizeof(int64_t))
        if grown != NULL:
            memcpy(grown, inline_, cap[0] * sizeof(int64_t))
    else:
        grown = <int64_t*>realloc(data[0], new_cap * sizeof(int64_t))
    if grown == NULL:
        raise MemoryError()
    data[0] = grown
    cap[0] = new_cap
    return 0


@cython.final
cdef class _Decoder:
    cdef Py_buffer view
    cdef bint has_view
    cdef const unsigned char* buf
    cdef Py_ssize_t pos
    cdef Py_ssize_t end
    cdef int max_depth
    cdef Py_ssize_t max_length
    cdef object registry
    cdef int depth
    cdef int64_t max_values
    cdef int64_t left
    cdef bint references
    cdef list refs0
    cdef list strings3
    cdef list objects3
    cdef list traits3
    cdef int64_t* sizes0
    cdef Py_ssize_t cap0
    cdef int64_t* sizes3
    cdef Py_ssize_t cap3
    cdef int64_t inline0[_SIZES_INLINE]
    cdef int64_t inline3[_SIZES_INLINE]

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
        if self.sizes0 != NULL and self.sizes0 != self.inline0:
            free(self.sizes0)
        if self.sizes3 != NULL and self.sizes3 != self.inline3:
            free(self.sizes3)

    cdef int init(self, object data, int version, int max_depth, Py_ssize_t max_length,
                  object registry, int64_t max_values, bint references) except -1:
        try:
            PyObject_GetBuffer(data, &self.view, PyBUF_SIMPLE)
        except BufferError:  # strided or otherwise not contiguous: one copy
            PyObject_GetBuffer(memoryview(data).tobytes(), &self.view, PyBUF_SIMPLE)
        self.has_view = True
        self.buf = <const unsigned char*>self.view.buf
        self.pos = 0
        self.end = self.view.len
        self.max_depth = max_depth
        self.max_length = max_length
        self.registry = DEFAULT_REGISTRY if registry is None else registry
        self.depth = 0
        self.max_values = max_values
        self.left = max_values
        self.references = references
        self.sizes0 = self.inline0
        self.cap0 = _SIZES_INLINE
        self.sizes3 = self.inline3
        self.cap3 = _SIZES_INLINE
        # only the tables the version reads: AMF0 makes its AMF3 context at
        # each switch marker, and AMF3 has no way back to AMF0
        if version == 0:
            self.refs0 = []
        else:
            self.new_amf3_context()
        return 0

    cdef inline void new_amf3_context(self):
        # sizes3 is not saved with the lists: a new context only starts at an
        # AMF0 switch marker, where the AMF3 context is always the empty one
        # (AMF3 has no way back to AMF0), and every entry is written when its
        # value enters the table, before any reference can read it.
        self.strings3 = []
        self.objects3 = []
        self.traits3 = []

    # primitives: every read checks the bytes left first

    cdef int truncated(self, Py_ssize_t n) except -1:
        raise AMFDecodeError(f"truncated AMF data: need {n} bytes at offset {self.pos}, "
                             f"{self.end - self.pos} left")

    cdef inline const unsigned char* take(self, Py_ssize_t n) except NULL:
        cdef const unsigned char* p
        if n > self.end - self.pos:
            self.truncated(n)
        p = self.buf + self.pos
        self.pos += n
        return p

    cdef inline int byte(self) except -1:
        if self.pos >= self.end:
            self.truncated(1)
        self.pos += 1
        return self.buf[self.pos - 1]

    cdef inline uint32_t u16(self) except? 0xFFFFFFFF:
        return _ld16(self.take(2))

    cdef inline int64_t u32(self) except -1:
        return _ld32(self.take(4))

    cdef inline double double(self) except? -1.0:
        return _ld_double(self.take(8))

    cdef inline int check_length(self, int64_t n, int unit) except -1:
        if n > self.max_length or n * unit > self.end - self.pos:
            self.length_error(n, unit)
        return 0

    cdef int length_error(self, int64_t n, int unit) except -1:
        if n > self.max_length:
            raise AMFDecodeError(f"AMF length {n} above max_length={self.max_length}")
        raise AMFDecodeError(f"truncated AMF data: length {n} at offset {self.pos} exceeds "
                             f"the {self.end - self.pos} bytes left")

    cdef str text(self, int64_t n):
        # invalid UTF-8 raises UnicodeDecodeError here; loads() and
        # loads_all() turn it into AMFDecodeError (no try block per string)
        self.check_length(n, 1)
        return _utf8(self.take(n), n)

    cdef inline int enter(self) except -1:
        self.depth += 1
        if self.depth > self.max_depth:
            raise AMFDecodeError(f"AMF value nested deeper than max_depth={self.max_depth}")
        return 0

    # the budget

    cdef inline int tick(self) except -1:
        """Spend one value of the budget."""
        if self.left == 0:
            self.too_many()
        self.left -= 1
        return 0

    cdef inline int take_values(self, int64_t n) except -1:
        """Spend n values of the budget."""
        if n > self.left:
            self.too_many()
        self.left -= n
        return 0

    cdef inline int need_values(self, int64_t n) except -1:
        """Refuse a container of n members before reading (or allocating) any:
        each member takes at least one value."""
        if n > self.left:
            self.too_many()
        return 0

    cdef int too_many(self) except -1:
        raise AMFDecodeError(f"AMF data decodes to more than {self.max_values} values "
                             f"(references expanded): max_values={self.max_values}")

    cdef int no_references(self, str what, Py_ssize_t index) except -1:
        raise AMFDecodeError(f"{what} {index}: references are not allowed (references=False)")

    cdef inline Py_ssize_t open0(self, object obj) except -1:
        """Count a container and enter it in the AMF0 table; its index."""
        cdef Py_ssize_t index = PyList_GET_SIZE(self.refs0)
        self.tick()
        self.refs0.append(obj)
        if index <= _AMF0_MAX_INDEX:
            if index >= self.cap0:
                _grow_sizes(&self.sizes0, &self.cap0, self.inline0, index)
            self.sizes0[index] = 0  # being read
        return index

    cdef inline void close0(self, Py_ssize_t index, int64_t start) noexcept:
        """A container is complete: its expanded size is what it took."""
        if index <= _AMF0_MAX_INDEX:
            self.sizes0[index] = start - self.left

    cdef inline Py_ssize_t add3(self, object obj, int64_t size) except -1:
        """Count a value of ``size`` values and enter it in the object table.

        ``size`` 0 is a container about to be read (counted 1 here, its size
        set by close3); otherwise a complete value.
        """
        cdef Py_ssize_t index = PyList_GET_SIZE(self.objects3)
        self.take_values(size if size else 1)
        self.objects3.append(obj)
        if index >= self.cap3:
            _grow_sizes(&self.sizes3, &self.cap3, self.inline3, index)
        self.sizes3[index] = size
        return index

    cdef inline void close3(self, Py_ssize_t index, int64_t start) noexcept:
        self.sizes3[index] = start - self.left

    # AMF0

    cdef object read0(self):
        # the scalars most values are, in a small function (a cheap call per
        # array element or member); everything else in read0_other
        cdef int marker = self.byte()
        cdef object obj
        cdef Py_ssize_t n
        cdef double d
        if marker == 0x00:
            d = _ld_double(self.take(8))  # take's NULL: no -1.0 check to make
            self.tick()
            return PyFloat_FromDouble(d)
        if marker == 0x02:
            n = self.u16()
            self.check_length(n, 1)
            obj = _utf8(self.take(n), n)
            self.tick()
            return obj
        if marker == 0x01:
            n = self.byte()
            self.tick()
            return n != 0
        if marker == 0x05:
            self.tick()
            return None
        return self.read0_other(marker)

    cdef object read0_other(self, int marker):
        cdef object obj
        cdef Py_ssize_t n, i, index
        cdef int64_t start
        if marker == 0x03:
            obj = {}
            start = self.left
            index = self.open0(obj)
            self.members0(obj)
            self.close0(index, start)
            return obj
        if marker == 0x08:
            self.u32()  # entry count: a hint, often wrong; the end marker decides
            obj = _ECMAArray()
            start = self.left
            index = self.open0(obj)
            self.members0(obj)
            self.close0(index, start)
            return obj
        if marker == 0x0A:
            n = self.u32()
            self.check_length(n, 1)
            self.need_values(1 + n)
            # sized once (n is bounded by the bytes left and the budget),
            # filled in place; every slot holds a valid object (None) until
            # it is read
            obj = [None] * n
            start = self.left
            index = self.open0(obj)
            self.enter()
            for i in range(n):
                item = self.read0()
                Py_INCREF(item)
                Py_XDECREF(PyList_GET_ITEM_PTR(obj, i))  # the None placeholder
                PyList_SET_ITEM(obj, i, item)
            self.depth -= 1
            self.close0(index, start)
            return obj
        if marker == 0x06:
            self.tick()
            return _UNDEFINED
        if marker == 0x07:
            index = self.u16()
            if not self.references:
                self.no_references("AMF0 reference", index)
            if index >= PyList_GET_SIZE(self.refs0):
                raise AMFDecodeError(f"AMF0 reference {index} out of range "
                                     f"({len(self.refs0)} objects)")
            # 0: a container still being read (a cycle) counts 1
            self.take_values(self.sizes0[index] if self.sizes0[index] else 1)
            return self.refs0[index]
        if marker == 0x0B:
            ms = self.double()
            self.take(2)  # timezone: reserved, written as 0
            obj = ms_to_datetime(ms)
            self.tick()
            return obj
        if marker == 0x0C:
            obj = self.text(self.u32())
            self.tick()
            return obj
        if marker == 0x0D:
            self.tick()
            return _UNSUPPORTED
        if marker == 0x0F:
            obj = _XMLDocument(self.text(self.u32()))
            self.tick()
            return obj
        if marker == 0x10:
            return self.typed0()
        if marker == 0x11:
            return self.switch3()
        if marker == 0x04 or marker == 0x0E:
            name = "movieclip" if marker == 0x04 else "recordset"
            raise AMFDecodeError(f"reserved AMF0 marker 0x{marker:02x} ({name}) at offset "
                                 f"{self.pos - 1}")
        raise AMFDecodeError(f"unknown AMF0 marker 0x{marker:02x} at offset {self.pos - 1}")

    cdef object typed0(self):
        class_name = self.text(self.u16())
        typed = _TypedObject(class_name)
        cdef int64_t start = self.left
        cdef Py_ssize_t index = self.open0(typed)
        self.members0(typed)
        self.close0(index, start)
        alias = self.registry.by_alias(class_name)
        if alias is not None and not alias.externalizable:
            converted = alias.from_dict(dict(typed))
            self.refs0[index] = converted
            return converted
        return typed

    cdef object switch3(self):
        cdef list strings3 = self.strings3
        cdef list objects3 = self.objects3
        cdef list traits3 = self.traits3
        self.new_amf3_context()
        value = self.read3()
        self.strings3 = strings3
        self.objects3 = objects3
        self.traits3 = traits3
        return value

    cdef int members0(self, object obj) except -1:
        cdef uint32_t n
        self.enter()
        while True:
            n = self.u16()
            if n == 0:
                if self.byte() != 0x09:
                    raise AMFDecodeError(f"AMF0 empty key not followed by the object-end "
                                         f"marker at offset {self.pos - 1}")
                break
            if n <= _KEY_CACHE_MAX_LEN and n <= self.max_length and n <= self.end - self.pos:
                key = _cached_key(self.buf + self.pos, n)
                self.pos += n
            else:
                key = self.text(n)  # and the length errors
            PyDict_SetItem(obj, key, self.read0())
        self.depth -= 1
        return 0

    # AMF3

    cdef int64_t u29(self) except -1:
        cdef uint32_t n = 0
        cdef int b, i
        for i in range(3):
            b = self.byte()
            if b < 0x80:
                return (n << 7) | b
            n = (n << 7) | (b & 0x7F)
        return (n << 8) | self.byte()

    cdef str string3(self):
        cdef int64_t header = self.u29()
        if not header & 1:
            return self.string_ref3(header)
        if header == 1:
            return ""
        s = self.text(header >> 1)
        self.strings3.append(s)
        return s

    cdef str key3(self):
        """string3 for a member or trait name: short names from the key cache."""
        cdef int64_t header = self.u29()
        cdef Py_ssize_t n
        if not header & 1:
            return self.string_ref3(header)
        if header == 1:
            return ""
        n = header >> 1
        if n <= _KEY_CACHE_MAX_LEN and n <= self.max_length and n <= self.end - self.pos:
            s = _cached_key(self.buf + self.pos, n)
            self.pos += n
        else:
            s = self.text(n)  # and the length errors
        self.strings3.append(s)
        return s

    cdef str string_ref3(self, int64_t header):
        cdef Py_ssize_t index = header >> 1
        if index >= PyList_GET_SIZE(self.strings3):
            raise AMFDecodeError(f"AMF3 string reference {index} out of range "
                                 f"({len(self.strings3)} strings)")
        s = <str>self.strings3[index]
        # repeating a long string costs its text: one value per 64 characters
        self.take_values(PyUnicode_GET_LENGTH(<PyObject*>s) >> 6)
        return s

    cdef object object_ref3(self, int64_t header):
        cdef Py_ssize_t index = header >> 1
        if not self.references:
            self.no_references("AMF3 object reference", index)
        if index >= PyList_GET_SIZE(self.objects3):
            raise AMFDecodeError(f"AMF3 object reference {index} out of range "
                                 f"({len(self.objects3)} objects)")
        obj = self.objects3[index]
        if obj is _IN_PROGRESS:
            raise AMFDecodeError("AMF3 reference to an externalizable object still being read")
        # 0: a container still being read (a cycle) counts 1
        self.take_values(self.sizes3[index] if self.sizes3[index] else 1)
        return obj

    cdef object read3(self):
        # the scalars in a small function, as read0
        cdef int marker = self.byte()
        cdef int64_t n
        cdef double d
        if marker == 0x06:
            s = self.string3()  # a string reference is not an object reference
            self.tick()
            return s
        if marker == 0x05:
            d = _ld_double(self.take(8))
            self.tick()
            return PyFloat_FromDouble(d)
        if marker == 0x04:
            n = self.u29()
            self.tick()
            return n - 0x20000000 if n & 0x10000000 else n
        if 0x01 <= marker <= 0x03:
            self.tick()
            return None if marker == 0x01 else marker == 0x03
        return self.read3_other(marker)

    cdef object read3_other(self, int marker):
        cdef int64_t n, header
        if marker == 0x0A:
            return self.object3()
        if marker == 0x09:
            return self.array3()
        if marker == 0x00:
            self.tick()
            return _UNDEFINED
        if marker == 0x07 or marker == 0x0B:
            header = self.u29()
            if not header & 1:
                return self.object_ref3(header)
            text = self.text(header >> 1)
            xml = _XMLDocument(text) if marker == 0x07 else _XML(text)
            self.add3(xml, 1)
            return xml
        if marker == 0x08:
            header = self.u29()
            if not header & 1:
                return self.object_ref3(header)
            date = ms_to_datetime(self.double())
            self.add3(date, 1)
            return date
        if marker == 0x0C:
            header = self.u29()
            if not header & 1:
                return self.object_ref3(header)
            n = header >> 1
            self.check_length(n, 1)
            data = PyBytes_FromStringAndSize(<const char*>self.take(n), n)
            self.add3(data, 1)
            return data
        if 0x0D <= marker <= 0x10:
            return self.vector3(marker)
        if marker == 0x11:
            return self.dictionary3()
        raise AMFDecodeError(f"unknown AMF3 marker 0x{marker:02x} at offset {self.pos - 1}")

    cdef object array3(self):
        cdef int64_t header = self.u29()
        cdef Py_ssize_t n, i, index
        cdef int64_t start
        cdef list dense
        if not header & 1:
            return self.object_ref3(header)
        n = header >> 1
        self.check_length(n, 1)
        self.need_values(1 + n)
        assoc = _ECMAArray()
        start = self.left
        index = self.add3(assoc, 0)
        self.enter()
        key = self.key3()
        while key:
            PyDict_SetItem(assoc, key, self.read3())
            key = self.key3()
        if not assoc:
            dense = []
            self.objects3[index] = result = dense
        elif n == 0:
            result = assoc
            dense = None
        else:
            mixed = _MixedArray((), assoc)
            dense = mixed.dense
            self.objects3[index] = result = mixed
        self.check_length(n, 1)
        for i in range(n):
            PyList_Append(dense, self.read3())
        self.depth -= 1
        self.close3(index, start)
        return result

    cdef object object3(self):
        cdef int64_t header = self.u29()
        cdef int64_t start
        cdef Py_ssize_t index, count, i
        cdef bint dynamic, external
        cdef tuple sealed
        cdef tuple traits
        if not header & 1:
            return self.object_ref3(header)
        if not header & 2:
            index = header >> 2
            if index >= len(self.traits3):
                raise AMFDecodeError(f"AMF3 traits reference {index} out of range "
                                     f"({len(self.traits3)} traits)")
            traits = self.traits3[index]
            class_name, sealed, dynamic, external = traits
        else:
            external = (header & 4) != 0
            dynamic = (header & 8) != 0
            count = header >> 4
            class_name = self.string3()
            if external:
                sealed = ()
            else:
                self.check_length(count, 1)
                sealed = tuple([self.key3() for i in range(count)])
            self.traits3.append((class_name, sealed, dynamic, external))
        alias = self.registry.by_alias(class_name) if class_name else None
        self.enter()
        start = self.left
        if external:
            if alias is None or not alias.externalizable:
                raise AMFDecodeError(f"AMF3 externalizable class {class_name!r} is not "
                                     f"registered")
            index = self.add3(_IN_PROGRESS, 0)
            obj = alias.read(_ExternalReader(self))
            self.objects3[index] = obj
            self.close3(index, start)
            self.depth -= 1
            return obj
        members = _TypedObject(class_name) if class_name else {}
        index = self.add3(members, 0)
        for name in sealed:
            PyDict_SetItem(members, name, self.read3())
        if dynamic:
            key = self.key3()
            while key:
                PyDict_SetItem(members, key, self.read3())
                key = self.key3()
        self.depth -= 1
        self.close3(index, start)
        if alias is not None and not alias.externalizable:
            converted = alias.from_dict(dict(members))
            self.objects3[index] = converted
            return converted
        return members

    cdef object vector3(self, int marker):
        cdef int64_t header = self.u29()
        cdef int64_t start
        cdef Py_ssize_t n, i, index
        cdef const unsigned char* p
        cdef list items
        cdef bint fixed
        if not header & 1:
            return self.object_ref3(header)
        n = header >> 1
        fixed = self.byte() != 0
        if marker == 0x10:
            self.check_length(n, 1)
            self.enter()
            vec = _Vector((), "object", fixed, self.string3())
            self.need_values(1 + n)
            start = self.left
            index = self.add3(vec, 0)
            self.check_length(n, 1)
            for i in range(n):
                vec.append(self.read3())
            self.depth -= 1
            self.close3(index, start)
            return vec
        self.check_length(n, 8 if marker == 0x0F else 4)
        self.take_values(1 + n)  # the vector and its numbers
        items = []
        if marker == 0x0D:
            p = self.take(n * 4)
            for i in range(n):
                PyList_Append(items, <int32_t>_ld32(p + 4 * i))
            vec = _Vector(items, "int", fixed)
        elif marker == 0x0E:
            p = self.take(n * 4)
            for i in range(n):
                PyList_Append(items, _ld32(p + 4 * i))
            vec = _Vector(items, "uint", fixed)
        else:
            p = self.take(n * 8)
            for i in range(n):
                PyList_Append(items, _ld_double(p + 8 * i))
            vec = _Vector(items, "double", fixed)
        index = PyList_GET_SIZE(self.objects3)
        self.objects3.append(vec)
        if index >= self.cap3:
            _grow_sizes(&self.sizes3, &self.cap3, self.inline3, index)
        self.sizes3[index] = 1 + n
        return vec

    cdef object dictionary3(self):
        cdef int64_t header = self.u29()
        cdef int64_t start
        cdef Py_ssize_t n, i, index
        if not header & 1:
            return self.object_ref3(header)
        n = header >> 1
        weak = self.byte() != 0
        self.check_length(n, 2)
        self.need_values(1 + 2 * n)
        result = _Dictionary((), weak)
        start = self.left
        index = self.add3(result, 0)
        self.enter()
        for i in range(n):
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


@cython.final
cdef class _ExternalReader:
    """What an externalizable class's ``read`` sees of the decoder."""

    cdef _Decoder _dec

    def __cinit__(self, _Decoder dec):
        self._dec = dec

    def read_value(self):
        return self._dec.read3()

    def read_bytes(self, Py_ssize_t n):
        self._dec.check_length(n, 1)
        return PyBytes_FromStringAndSize(<const char*>self._dec.take(n), n)


def loads(data, *, int version=0, int max_depth=DEFAULT_MAX_DEPTH,
          Py_ssize_t max_length=DEFAULT_MAX_LENGTH, max_values=DEFAULT_MAX_VALUES,
          references=True, registry=None):
    """Decode exactly one AMF0 or AMF3 value; trailing bytes are an error.

    ``max_values`` bounds the values the call produces, each reference
    counted as the whole value it refers to; ``references=False`` refuses
    object references.  Both raise AMFDecodeError (see :mod:`rtmpx.amf`).
    """
    _check_args(version, max_depth)
    cdef int64_t budget = _check_budget(max_values, references)
    cdef _Decoder dec = _Decoder.__new__(_Decoder)
    dec.init(data, version, max_depth, max_length, registry, budget, references is True)
    try:
        value = dec.read0() if version == 0 else dec.read3()
    except UnicodeDecodeError as exc:
        raise _utf8_decode_error(exc) from None
    if dec.pos != dec.end:
        raise AMFDecodeError(f"{dec.end - dec.pos} trailing bytes after the AMF value "
                             f"at offset {dec.pos}")
    return value


def loads_all(data, *, int version=0, int max_depth=DEFAULT_MAX_DEPTH,
              Py_ssize_t max_length=DEFAULT_MAX_LENGTH, max_values=DEFAULT_MAX_VALUES,
              references=True, registry=None):
    """Decode every value in ``data`` (a command message body).

    Takes the arguments of :func:`loads`; ``max_values`` bounds all the
    values of the call together.
    """
    _check_args(version, max_depth)
    cdef int64_t budget = _check_budget(max_values, references)
    cdef _Decoder dec = _Decoder.__new__(_Decoder)
    dec.init(data, version, max_depth, max_length, registry, budget, references is True)
    cdef list values = []
    try:
        while dec.pos < dec.end:
            values.append(dec.read0() if version == 0 else dec.read3())
    except UnicodeDecodeError as exc:
        raise _utf8_decode_error(exc) from None
    return values


cdef object _utf8_decode_error(object exc):
    return AMFDecodeError(f"invalid UTF-8 in AMF string: {exc}")
