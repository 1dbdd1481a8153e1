"""The rtmpx error family.

Everything rtmpx raises on purpose derives from :class:`RtmpError`:

* :class:`ProtocolError` - the peer (or the bytes handed to a decoder) broke
  the protocol.  The session layer turns it into a clean disconnect of that
  one peer.
* :class:`HandshakeError` - the handshake failed (a version other than 3).
* :class:`AMFDecodeError` - bytes that are not valid AMF, or that exceed a
  configured limit.  Also a :class:`ValueError`.
* :class:`AMFEncodeError` - a Python value that has no AMF form.  Also a
  :class:`TypeError`.
"""

from __future__ import annotations

__all__ = [
    "AMFDecodeError",
    "AMFEncodeError",
    "HandshakeError",
    "ProtocolError",
    "RtmpError",
]


class RtmpError(Exception):
    """Base class of every error rtmpx raises on purpose."""


class ProtocolError(RtmpError):
    """The peer, or the bytes given to a decoder, broke the RTMP protocol."""


class HandshakeError(ProtocolError):
    """The RTMP handshake failed: wrong version, bad lengths, a peer that stops."""


class AMFDecodeError(ProtocolError, ValueError):
    """Bytes that are not a valid AMF0/AMF3 encoding, or exceed a limit."""


class AMFEncodeError(RtmpError, TypeError):
    """A Python value that cannot be written as AMF."""
