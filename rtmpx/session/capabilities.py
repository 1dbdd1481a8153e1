"""Enhanced RTMP connect negotiation: what each end says it supports.

Enhanced RTMP v2 ("Enhancing NetConnection connect Command") adds four
properties to the ``connect`` command object, all optional:

* ``fourCcList`` - a strict array of FourCC strings (``"hvc1"``,
  ``"Opus"``, ...; ``"*"`` for any codec), the v1 form;
* ``videoFourCcInfoMap`` / ``audioFourCcInfoMap`` - objects mapping a
  FourCC (or ``"*"``) to a :class:`FourCcInfo` mask (CanDecode 0x01,
  CanEncode 0x02, CanForward 0x04); the ``"*"`` entry applies to every
  codec on top of its own entry;
* ``capsEx`` - a :class:`CapsEx` mask (Reconnect 0x01, Multitrack 0x02,
  ModEx 0x04, TimestampNanoOffset 0x08).

The server states its own support the same way, in the properties object
(the command object) of the connect ``_result``.  A client that sent none
of them is a legacy client: it gets the legacy answer, unchanged.

:class:`Capabilities` is both sides' view: :meth:`Capabilities.from_amf`
reads them from a peer (bounded: at most :data:`MAX_FOURCC_ENTRIES`
entries of each list or map are looked at; entries that are not FourCCs,
masks that are not whole numbers, fields of the wrong type are ignored),
:meth:`Capabilities.to_amf` writes ours.  This module is the only place
that parses or encodes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntFlag
from itertools import islice
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "DEFAULT_CAPABILITIES",
    "LEGACY",
    "MAX_FOURCC_ENTRIES",
    "RTMPX_FOURCCS",
    "WILDCARD",
    "Capabilities",
    "CapsEx",
    "FourCcInfo",
]


class CapsEx(IntFlag):
    """The ``capsEx`` mask of Enhanced RTMP v2 (enum CapsExMask)."""

    RECONNECT = 0x01              #: NetConnection.Connect.ReconnectRequest
    MULTITRACK = 0x02
    MOD_EX = 0x04                 #: can parse the ModEx signal
    TIMESTAMP_NANO_OFFSET = 0x08


class FourCcInfo(IntFlag):
    """The value of a ``[video|audio]FourCcInfoMap`` entry (enum FourCcInfoMask)."""

    CAN_DECODE = 0x01
    CAN_ENCODE = 0x02
    CAN_FORWARD = 0x04


#: The FourCC that stands for every codec.
WILDCARD: Final = "*"

#: The most entries of a peer's ``fourCcList`` or FourCC map that are read
#: (the rest is ignored): there are a dozen codecs.
MAX_FOURCC_ENTRIES: Final = 64

#: The Enhanced RTMP codecs rtmpx parses (``rtmpx.media``), video then audio.
RTMPX_FOURCCS: Final = ("av01", "vp09", "vp08", "hvc1", "avc1",
                        "ac-3", "ec-3", "Opus", ".mp3", "fLaC", "mp4a")

_MASK_LIMIT = 1 << 32
_Map = Mapping[str, FourCcInfo]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one end of a connection supports, as its ``connect`` (client) or
    connect ``_result`` (server) said.

    A field is None when the peer did not send it (or sent something
    unreadable).  ``Capabilities()`` says nothing: a legacy peer, and, as
    what we advertise, the legacy ``connect``/``_result``.
    """

    #: ``fourCcList``: FourCCs, ``"*"`` for any
    fourcc_list: tuple[str, ...] | None = None
    #: ``videoFourCcInfoMap``: FourCC (or ``"*"``) -> flags
    video_fourcc_info: _Map | None = None
    #: ``audioFourCcInfoMap``: FourCC (or ``"*"``) -> flags
    audio_fourcc_info: _Map | None = None
    #: ``capsEx``
    caps_ex: CapsEx | None = None

    def __post_init__(self) -> None:
        # read-only views: a shared default cannot be changed by accident
        for name in ("video_fourcc_info", "audio_fourcc_info"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        if self.fourcc_list is not None and not isinstance(self.fourcc_list, tuple):
            object.__setattr__(self, "fourcc_list", tuple(self.fourcc_list))

    @property
    def enhanced(self) -> bool:
        """Whether anything was said at all (False: a legacy peer)."""
        return (self.fourcc_list is not None or self.video_fourcc_info is not None
                or self.audio_fourcc_info is not None or self.caps_ex is not None)

    def _caps(self, flag: CapsEx) -> bool:
        return self.caps_ex is not None and bool(self.caps_ex & flag)

    @property
    def reconnect(self) -> bool:
        """capsEx Reconnect: NetConnection.Connect.ReconnectRequest is understood."""
        return self._caps(CapsEx.RECONNECT)

    @property
    def multitrack(self) -> bool:
        """capsEx Multitrack."""
        return self._caps(CapsEx.MULTITRACK)

    @property
    def mod_ex(self) -> bool:
        """capsEx ModEx."""
        return self._caps(CapsEx.MOD_EX)

    @property
    def timestamp_nano_offset(self) -> bool:
        """capsEx TimestampNanoOffset."""
        return self._caps(CapsEx.TIMESTAMP_NANO_OFFSET)

    def video_flags(self, fourcc: str) -> FourCcInfo:
        """The flags of a video FourCC: its entry and the ``"*"`` entry together."""
        return _flags(self.video_fourcc_info, fourcc)

    def audio_flags(self, fourcc: str) -> FourCcInfo:
        """The flags of an audio FourCC: its entry and the ``"*"`` entry together."""
        return _flags(self.audio_fourcc_info, fourcc)

    def supports(self, fourcc: str) -> bool:
        """Whether ``fourcc`` is named (or covered by ``"*"``) in the list or
        with any flag in either map."""
        listed = self.fourcc_list or ()
        return (fourcc in listed or WILDCARD in listed
                or bool(self.video_flags(fourcc)) or bool(self.audio_flags(fourcc)))

    # -- the wire ------------------------------------------------------------------

    @classmethod
    def from_amf(cls, obj: Any) -> Capabilities:
        """Read them from a decoded connect command object or connect
        ``_result`` properties object (anything else: nothing said).
        Bounded and never raising: see the module's documentation."""
        if not isinstance(obj, dict):
            return LEGACY
        return cls(_fourcc_list(obj.get("fourCcList")), _fourcc_map(obj.get("videoFourCcInfoMap")),
                   _fourcc_map(obj.get("audioFourCcInfoMap")), _caps_ex(obj.get("capsEx")))

    def to_amf(self) -> dict[str, Any]:
        """The properties to put in a connect command object or connect
        ``_result``: only the fields that are set (new objects on every
        call: AMF0 would write an object seen twice as a reference)."""
        out: dict[str, Any] = {}
        if self.fourcc_list is not None:
            out["fourCcList"] = list(self.fourcc_list)
        if self.video_fourcc_info is not None:
            out["videoFourCcInfoMap"] = {k: float(v) for k, v in self.video_fourcc_info.items()}
        if self.audio_fourcc_info is not None:
            out["audioFourCcInfoMap"] = {k: float(v) for k, v in self.audio_fourcc_info.items()}
        if self.caps_ex is not None:
            out["capsEx"] = float(self.caps_ex)
        return out


def _flags(info: _Map | None, fourcc: str) -> FourCcInfo:
    if info is None:
        return FourCcInfo(0)
    return FourCcInfo(info.get(fourcc, 0) | info.get(WILDCARD, 0))


def _fourcc(value: Any) -> str | None:
    """A FourCC (four printable ASCII characters) or ``"*"``, else None."""
    if not isinstance(value, str):
        return None
    if value == WILDCARD or (len(value) == 4 and all(" " <= c <= "~" for c in value)):
        return value
    return None


def _mask(value: Any) -> int | None:
    """A whole number in 0..2**32-1 (a bit mask), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if 0 <= value < _MASK_LIMIT else None


def _fourcc_list(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, (list, tuple)):
        return None
    return tuple(dict.fromkeys(f for f in map(_fourcc, islice(value, MAX_FOURCC_ENTRIES))
                               if f is not None))


def _fourcc_map(value: Any) -> _Map | None:
    if not isinstance(value, dict):  # an object, or an ECMA array
        return None
    entries: Iterable[tuple[Any, Any]] = islice(value.items(), MAX_FOURCC_ENTRIES)
    out: dict[str, FourCcInfo] = {}
    for key, mask in entries:
        fourcc, bits = _fourcc(key), _mask(mask)
        if fourcc is not None and bits is not None:
            out[fourcc] = FourCcInfo(bits)
    return out


def _caps_ex(value: Any) -> CapsEx | None:
    bits = _mask(value)
    return CapsEx(bits) if bits is not None else None


#: Nothing said: a legacy peer, or what a legacy connect advertises.
LEGACY: Final = Capabilities()

_ALL_CAPS_EX = CapsEx.RECONNECT | CapsEx.MULTITRACK | CapsEx.MOD_EX | CapsEx.TIMESTAMP_NANO_OFFSET

#: What rtmpx says it supports, client and server alike: it relays any
#: codec as it is (``"*"``: CanForward; it neither decodes nor encodes),
#: names the codecs it parses in ``fourCcList`` (peers that look for a
#: FourCC there, as v1 peers do, find it), and understands reconnect
#: requests, multitrack, ModEx and the nanosecond timestamp offset.
DEFAULT_CAPABILITIES: Final = Capabilities(
    fourcc_list=RTMPX_FOURCCS,
    video_fourcc_info={WILDCARD: FourCcInfo.CAN_FORWARD},
    audio_fourcc_info={WILDCARD: FourCcInfo.CAN_FORWARD},
    caps_ex=_ALL_CAPS_EX,
)
