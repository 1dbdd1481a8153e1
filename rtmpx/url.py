"""RTMP URLs: ``rtmp[s]://host[:port]/app[/instance]/stream[?query]``.

::

    >>> u = parse_url("rtmp://example.com/live/key?token=abc")
    >>> (u.host, u.port, u.app, u.stream)
    ('example.com', 1935, 'live', 'key?token=abc')
    >>> u.tc_url
    'rtmp://example.com:1935/live'

The stream name is the last path segment, with the query attached (servers
read tokens from it); the application is everything before it, so
``rtmp://h/app/instance/key`` has app ``app/instance``.  A URL with a
single path segment names only the application (``stream == ""``); a
query there stays with the application (``rtmp://h/live?token=x`` has app
``live?token=x``, which servers split off again).

A ``tcUrl`` (of ``connect``, or of a reconnect request) names an
application only: :func:`parse_tc_url` takes its whole path as the
application, so ``rtmp://h/app/instance`` keeps app ``app/instance``
where :func:`parse_url` would read ``instance`` as a stream name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import DEFAULT_PORT, DEFAULT_TLS_PORT

__all__ = ["RtmpURL", "parse_tc_url", "parse_url", "resolve_url"]

_SCHEMES = {"rtmp": DEFAULT_PORT, "rtmps": DEFAULT_TLS_PORT}


@dataclass(frozen=True, slots=True)
class RtmpURL:
    """A parsed RTMP URL.

    ``host`` is a name or an IP address (IPv6 without brackets); ``app``
    the application path (``live``, ``app/instance``); ``stream`` the
    stream name including any ``?query``, or ``""``.
    """

    scheme: str
    host: str
    port: int
    app: str
    stream: str = ""

    def __post_init__(self) -> None:
        if self.scheme not in _SCHEMES:
            raise ValueError(f"unsupported scheme {self.scheme!r} (rtmp or rtmps)")
        if not self.host:
            raise ValueError("an RTMP URL needs a host")
        if not self.app:
            raise ValueError("an RTMP URL needs an application")
        if not 0 < self.port < 65536:
            raise ValueError(f"port out of range: {self.port}")

    @property
    def tls(self) -> bool:
        """Whether the scheme asks for TLS (``rtmps``)."""
        return self.scheme == "rtmps"

    @property
    def netloc(self) -> str:
        """``host:port``, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def tc_url(self) -> str:
        """The ``tcUrl`` of ``connect``: ``scheme://host:port/app``."""
        return f"{self.scheme}://{self.netloc}/{self.app}"

    @property
    def redacted(self) -> str:
        """The URL without its query strings (which may carry a token): for logs."""
        app = self.app.partition("?")[0]
        stream = self.stream.partition("?")[0]
        base = f"{self.scheme}://{self.netloc}/{app}"
        return f"{base}/{stream}" if stream else base

    def __str__(self) -> str:
        base = self.tc_url
        return f"{base}/{self.stream}" if self.stream else base


def parse_url(url: str) -> RtmpURL:
    """Parse ``rtmp[s]://host[:port]/app[/instance]/stream[?query]``.

    Raises :class:`ValueError` for another scheme, a missing host or
    application, user credentials, or a bad port.
    """
    scheme, host, port, path = _split_url(url)
    path, question, query = path.partition("?")
    segments = path.split("/")
    app_segments = segments if len(segments) == 1 else segments[:-1]
    if not all(app_segments):
        raise ValueError(f"an RTMP URL needs an application (no empty segments): {url!r}")
    if len(segments) == 1:
        app, stream = segments[0] + (question + query), ""
    else:
        app, stream = "/".join(app_segments), segments[-1] + (question + query)
    return RtmpURL(scheme, host, port, app, stream)


def parse_tc_url(url: str) -> RtmpURL:
    """Parse a ``tcUrl``, ``rtmp[s]://host[:port]/app[/instance][?query]``:
    the whole path, with the query, is the application (``stream`` is
    ``""``); one trailing ``/`` is dropped.

    Raises :class:`ValueError` as :func:`parse_url` does.
    """
    scheme, host, port, path = _split_url(url)
    path, question, query = path.partition("?")
    path = path.removesuffix("/")
    if not path or not all(path.split("/")):
        raise ValueError(f"a tcUrl needs an application (no empty segments): {url!r}")
    return RtmpURL(scheme, host, port, path + question + query)


def _split_url(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path?query)`` of an RTMP URL, checked up to the path."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _SCHEMES:
        raise ValueError(f"not an rtmp:// or rtmps:// URL: {url!r}")
    authority, slash, path = rest.partition("/")
    if "?" in authority or "#" in authority:
        raise ValueError(f"an RTMP URL needs an application path: {url!r}")
    if "@" in authority:
        raise ValueError("credentials in RTMP URLs are not supported")
    host, port = _split_authority(authority, _SCHEMES[scheme], url)
    if not slash:
        raise ValueError(f"an RTMP URL needs an application path: {url!r}")
    return scheme, host, port, path


def resolve_url(base: str, reference: str) -> str:
    """``reference`` resolved against the URL ``base`` (RFC 3986, as the
    Enhanced RTMP reconnect request's ``tcUrl`` asks): an absolute URL
    stays, ``//host/app`` takes the scheme of ``base``, ``/app`` its
    scheme and host, ``app`` replaces its last path segment.  The result
    is not checked (:func:`parse_url` does that)."""
    if not reference:
        return base
    if ":" in reference.partition("/")[0]:  # a scheme: absolute
        return reference
    scheme, _, rest = base.partition("://")
    if reference.startswith("//"):
        return f"{scheme}:{reference}"
    authority, _, path = rest.partition("/")
    if reference.startswith("/"):
        return f"{scheme}://{authority}{reference}"
    directory = path.partition("?")[0].rpartition("/")[0]
    return f"{scheme}://{authority}/{directory + '/' if directory else ''}{reference}"


def _split_authority(authority: str, default_port: int, url: str) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError(f"unclosed IPv6 bracket in {url!r}")
        host, after = authority[1:end], authority[end + 1:]
        if after and not after.startswith(":"):
            raise ValueError(f"bad host in {url!r}")
        port_text = after[1:] if after else ""
        has_port = bool(after)
    else:
        if authority.count(":") > 1:
            raise ValueError(f"IPv6 hosts need brackets: {url!r}")
        host, colon, port_text = authority.partition(":")
        has_port = bool(colon)
    if not host:
        raise ValueError(f"an RTMP URL needs a host: {url!r}")
    if not has_port:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} in {url!r}")
    return host, int(port_text)
