"""Ready-made decision hooks: stream-key tokens and application allow-lists.

Each check is a plain callable given a :class:`~rtmpx.server.hooks.Request`:
it returns ``True`` or raises :class:`Denied` with a reason for the peer.
Use them as the server's ``on_connect``/``on_publish``/``on_play`` hooks,
alone or chained with your own by :func:`all_of`::

    from rtmpx.server.auth import AllowApps, TokenAuth, all_of, load_tokens

    server = rtmpx.Server(
        on_publish=all_of(AllowApps("live"), TokenAuth(load_tokens("publish.tokens")),
                          my_on_publish),           # yours runs last, once the others allow
        on_play=AllowApps(["live", "vod"]),         # no on_play token: play is open
    )

Tokens are compared in constant time (:func:`hmac.compare_digest` on
SHA-256 digests of their UTF-8 bytes: neither the content nor the length of
a valid token leaks through timing).  Reasons never repeat a token, and
nothing here logs: the server logs the rejection, with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
from collections.abc import Awaitable, Callable, Iterable
from os import PathLike
from urllib.parse import parse_qs

from ..errors import Denied
from .hooks import Hook, Request

__all__ = ["AllowApps", "Denied", "TokenAuth", "all_of", "load_tokens"]

#: The longest application name a reason repeats (the rest is cut).
_SHOWN = 64


def _digest(token: str) -> bytes:
    # surrogatepass: a lone surrogate from the wire cannot raise, and its
    # bytes are never valid UTF-8, so they never equal a configured token's.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _strings(values: str | Iterable[str], what: str) -> list[str]:
    items = [values] if isinstance(values, str) else list(values)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{what} must be strings, not {type(item).__name__}")
    return items


def _connect_query(request: Request) -> str:
    """The query of the ``connect`` a request's connection made, as the
    session reads it: from the ``app`` field (``live?token=x``), else from
    ``tcUrl`` (``rtmp://host/live?token=x``)."""
    app = request.connect_params.get("app")
    query = app.partition("?")[2] if isinstance(app, str) else ""
    if not query and "?" in request.tc_url:
        query = request.tc_url.partition("?")[2]
    return query


def _param(query: str, name: str) -> str:
    values = parse_qs(query, keep_blank_values=True).get(name)
    return values[0] if values else ""


class TokenAuth:
    """A check that the request carries one of the valid ``tokens``.

    The token is the ``param`` (``token``) of the stream name's query:
    ``rtmp://host/live/key?token=SECRET`` (FFmpeg, or OBS with the stream
    key ``key?token=SECRET``).  With ``connect_query`` (the default), a
    request whose stream name carries none is checked against the query of
    its ``connect`` instead: ``rtmp://host/live?token=SECRET`` as the
    server URL of an encoder that takes a bare stream key.  The stream
    name's token, when there is one, is the one checked.

    The query is form-decoded (``%2B`` for ``+``, ``+`` for a space), as
    every server does; tokens from :func:`secrets.token_urlsafe` or
    :func:`secrets.token_hex` need no escaping.  Tokens are compared as
    UTF-8 bytes, exactly (no Unicode normalisation), in constant time; a
    missing or empty token is refused.  ``tokens`` is one token or several
    (any of them is accepted); an empty token, or none at all, is a
    :class:`ValueError`.  Raises :class:`Denied` ("Missing token." or
    "Invalid token.") when it refuses.
    """

    __slots__ = ("_digests", "connect_query", "param")

    def __init__(self, tokens: str | Iterable[str], *, param: str = "token",
                 connect_query: bool = True) -> None:
        items = _strings(tokens, "tokens")
        if not items:
            raise ValueError("TokenAuth needs at least one token")
        if not all(items):
            raise ValueError("a token cannot be empty")
        if not param:
            raise ValueError("param cannot be empty")
        for token in items:
            token.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
        self._digests = tuple(dict.fromkeys(_digest(token) for token in items))
        self.param = param
        self.connect_query = connect_query

    def __len__(self) -> int:
        """The number of distinct valid tokens."""
        return len(self._digests)

    def __repr__(self) -> str:
        return (f"TokenAuth(<{len(self)} token(s)>, param={self.param!r}, "
                f"connect_query={self.connect_query!r})")

    def token_of(self, request: Request) -> str:
        """The token a request carries (``""`` if none), from its stream
        name's query, else (with ``connect_query``) from its connect's."""
        token = _param(request.query, self.param)
        if not token and self.connect_query:
            token = _param(_connect_query(request), self.param)
        return token

    def is_valid(self, token: str) -> bool:
        """Whether ``token`` is one of the valid tokens (constant time: every
        valid token is compared, on digests of equal length)."""
        given = _digest(token)
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(given, digest)
        return found

    def __call__(self, request: Request) -> bool:
        """Allow (``True``) or raise :class:`Denied`; the reason names the
        parameter, never the token."""
        token = self.token_of(request)
        if not token:
            raise Denied(f"Missing {self.param}.")
        if not self.is_valid(token):
            raise Denied(f"Invalid {self.param}.")
        return True


class AllowApps:
    """A check that the request's application is one of ``apps``.

    Names are exact and case-sensitive (``live`` does not allow
    ``live/instance`` or ``Live``; leading and trailing slashes are
    ignored, as the server ignores them).  ``apps`` is one name or several;
    none at all allows nothing.  Raises :class:`Denied` ("Publish is not
    allowed in application 'x'.") when it refuses.
    """

    __slots__ = ("apps",)

    def __init__(self, apps: str | Iterable[str]) -> None:
        names = [app.strip("/") for app in _strings(apps, "apps")]
        if not all(names):
            raise ValueError("an application name cannot be empty")
        self.apps: frozenset[str] = frozenset(names)

    def __repr__(self) -> str:
        return f"AllowApps({sorted(self.apps)!r})"

    def __call__(self, request: Request) -> bool:
        """Allow (``True``) or raise :class:`Denied`."""
        if request.app in self.apps:
            return True
        app = request.app if len(request.app) <= _SHOWN else request.app[:_SHOWN] + "..."
        raise Denied(f"{request.action.capitalize()} is not allowed in "
                     f"application {app!r}.")


def all_of(*hooks: Hook | None) -> Callable[[Request], Awaitable[bool]]:
    """A decision hook that allows only when every one of ``hooks`` does.

    The hooks (plain or async; ``None`` is skipped) run in order, and the
    first that returns ``False`` or raises decides: the ones after it do not
    run, so put the cheap checks first and an expensive hook of yours (an
    HTTP call, a database) last.  Returns an async callable."""
    chain = tuple(hook for hook in hooks if hook is not None)

    async def check(request: Request) -> bool:
        for hook in chain:
            result = hook(request)
            if inspect.isawaitable(result):
                result = await result
            if result is False:
                return False
        return True

    check.__qualname__ = check.__name__ = "all_of"
    return check


def load_tokens(path: str | PathLike[str]) -> list[str]:
    """The tokens of a file: one a line (UTF-8; surrounding whitespace,
    blank lines and lines starting with ``#`` are ignored).  Raises
    :class:`OSError` if it cannot be read and :class:`ValueError` if it holds
    no token (an empty file must not open the server to everyone)."""
    with open(path, encoding="utf-8-sig") as file:
        tokens = [line.strip() for line in file]
    tokens = [token for token in tokens if token and not token.startswith("#")]
    if not tokens:
        raise ValueError(f"no token in {path}")
    return tokens
