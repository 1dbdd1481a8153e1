"""The rtmpx error family: every error rtmpx raises on purpose.

* :class:`RtmpError` - the base of them all.
* :class:`ProtocolError` - the peer (or the bytes handed to a decoder) broke
  the protocol.  The session layer turns it into a clean disconnect of that
  one peer.

  * :class:`HandshakeError` - the handshake failed (a version other than 3).
  * :class:`AMFDecodeError` - bytes that are not valid AMF, or that exceed
    a configured limit.  Also a :class:`ValueError`.

* :class:`InvalidStateError` - the application misused the API: a call
  that the state of the session or stream does not allow (``publish`` on
  a stream that is playing, ``accept_connect`` twice, ...).
* :class:`AMFEncodeError` - a Python value that has no AMF form.  Also a
  :class:`TypeError`.
* :class:`ConnectionRejectedError` - the server answered ``connect`` with
  ``_error``.
* :class:`StatusError` - the server refused a publish, play or call.
"""

from __future__ import annotations

from typing import Any

from .constants import status_text

__all__ = [
    "AMFDecodeError",
    "AMFEncodeError",
    "ConnectionRejectedError",
    "Denied",
    "HandshakeError",
    "InvalidStateError",
    "ProtocolError",
    "RtmpError",
    "StatusError",
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


class InvalidStateError(RtmpError):
    """The application asked for something the current state does not allow.

    The peer did nothing wrong: this is a misuse of the API (compare
    :class:`ProtocolError`, which is the peer's fault)."""


class ConnectionRejectedError(RtmpError):
    """The server answered ``connect`` with ``_error``; ``info`` is its
    status object (``code``, ``description``, ...)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.code = status_text(info, "code")
        self.description = status_text(info, "description")
        super().__init__(f"connect rejected: {self.code or 'no code'}"
                         + (f": {self.description}" if self.description else ""))


class StatusError(RtmpError):
    """A publish, play or call refused by the server (an error ``onStatus``
    or ``_error``): ``code`` (e.g. ``NetStream.Publish.BadName``),
    ``description`` and the whole ``info`` object."""

    def __init__(self, code: str, description: str = "",
                 info: dict[str, Any] | None = None) -> None:
        self.code = code
        self.description = description
        self.info = info if info is not None else {}
        super().__init__(f"{code or 'error'}" + (f": {description}" if description else ""))

    @classmethod
    def from_info(cls, info: Any, default_code: str = "") -> StatusError:
        """Build from a status object (anything that is not a dict gives ``default_code``)."""
        if not isinstance(info, dict):
            return cls(default_code, "", {})
        return cls(status_text(info, "code", default_code), status_text(info, "description"),
                   info)


class Denied(PermissionError):
    """A hook's refusal (see :mod:`rtmpx.server.auth`); its message is the
    reason the peer is told."""
