"""RTMP URL parsing: a table of good and bad URLs."""

from __future__ import annotations

import pytest

from rtmpx.url import RtmpURL, parse_tc_url, parse_url, resolve_url

GOOD = [
    ("rtmp://example.com/live/key",
     ("rtmp", "example.com", 1935, "live", "key"), "rtmp://example.com:1935/live"),
    ("rtmp://example.com:1936/live/key?token=abc&x=1",
     ("rtmp", "example.com", 1936, "live", "key?token=abc&x=1"),
     "rtmp://example.com:1936/live"),
    ("rtmps://example.com/live/key",
     ("rtmps", "example.com", 443, "live", "key"), "rtmps://example.com:443/live"),
    ("RTMP://Example.com/live/key",
     ("rtmp", "Example.com", 1935, "live", "key"), "rtmp://Example.com:1935/live"),
    ("rtmp://127.0.0.1:19350/app/instance/stream",
     ("rtmp", "127.0.0.1", 19350, "app/instance", "stream"),
     "rtmp://127.0.0.1:19350/app/instance"),
    ("rtmp://h/a/b/c/d", ("rtmp", "h", 1935, "a/b/c", "d"), "rtmp://h:1935/a/b/c"),
    ("rtmp://h/live", ("rtmp", "h", 1935, "live", ""), "rtmp://h:1935/live"),
    ("rtmp://h/live/", ("rtmp", "h", 1935, "live", ""), "rtmp://h:1935/live"),
    ("rtmp://h/live?token=1", ("rtmp", "h", 1935, "live?token=1", ""),
     "rtmp://h:1935/live?token=1"),
    ("rtmp://h/live/?q", ("rtmp", "h", 1935, "live", "?q"), "rtmp://h:1935/live"),
    ("rtmp://[::1]/live/key", ("rtmp", "::1", 1935, "live", "key"), "rtmp://[::1]:1935/live"),
    ("rtmps://[2001:db8::5]:8443/live/key?a=b",
     ("rtmps", "2001:db8::5", 8443, "live", "key?a=b"), "rtmps://[2001:db8::5]:8443/live"),
    ("rtmp://h/live/a?b/c", ("rtmp", "h", 1935, "live", "a?b/c"), "rtmp://h:1935/live"),
]


@pytest.mark.parametrize(("url", "parts", "tc_url"), GOOD, ids=[g[0] for g in GOOD])
def test_good_urls(url: str, parts: tuple[str, str, int, str, str], tc_url: str) -> None:
    u = parse_url(url)
    assert (u.scheme, u.host, u.port, u.app, u.stream) == parts
    assert u.tc_url == tc_url
    assert u.tls == (u.scheme == "rtmps")
    assert parse_url(str(u)) == u  # __str__ round-trips


BAD = [
    "http://h/live/key",
    "rtmpe://h/live/key",
    "rtmp:/h/live",
    "h/live/key",
    "",
    "rtmp://",
    "rtmp://h",
    "rtmp://h/",
    "rtmp:///live/key",
    "rtmp://:1935/live/key",
    "rtmp://h:0/live/key",
    "rtmp://h:65536/live/key",
    "rtmp://h:abc/live/key",
    "rtmp://h:/live/key",
    "rtmp://h:\u00b2/live/key",
    "rtmp://::1/live/key",
    "rtmp://[::1/live/key",
    "rtmp://[::1]x/live/key",
    "rtmp://user:pw@h/live/key",
    "rtmp://h?x/live/key",
    "rtmp://h//key",
    "rtmp://h/a//key",
    "rtmp://h/?q",
]


@pytest.mark.parametrize("url", BAD)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)


def test_str_and_validation() -> None:
    u = RtmpURL("rtmp", "h", 1935, "live", "key?t=1")
    assert str(u) == "rtmp://h:1935/live/key?t=1"
    assert str(RtmpURL("rtmps", "::1", 443, "app/inst")) == "rtmps://[::1]:443/app/inst"
    assert u.netloc == "h:1935"
    with pytest.raises(ValueError):
        RtmpURL("http", "h", 80, "live")
    with pytest.raises(ValueError):
        RtmpURL("rtmp", "", 1935, "live")
    with pytest.raises(ValueError):
        RtmpURL("rtmp", "h", 1935, "")
    with pytest.raises(ValueError):
        RtmpURL("rtmp", "h", 70000, "live")
    with pytest.raises(AttributeError):
        u.host = "x"  # type: ignore[misc]


@pytest.mark.parametrize(("base", "reference", "expected"), [
    # the Enhanced RTMP reconnect request's examples, against rtmp://h:1935/live
    ("rtmp://h:1935/live", "rtmp://foo.mydomain.com:1935/realtimeapp",
     "rtmp://foo.mydomain.com:1935/realtimeapp"),
    ("rtmp://h:1935/live", "//192.0.2.0/realtimeapp", "rtmp://192.0.2.0/realtimeapp"),
    ("rtmps://h/live", "//192.0.2.0/realtimeapp", "rtmps://192.0.2.0/realtimeapp"),
    ("rtmp://h:1935/live", "/realtimeapp", "rtmp://h:1935/realtimeapp"),
    ("rtmp://h:1935/live", "realtimeapp", "rtmp://h:1935/realtimeapp"),
    ("rtmp://h/app/instance?t=1/2", "other", "rtmp://h/app/other"),
    ("rtmp://[::1]:1935/live", "/x", "rtmp://[::1]:1935/x"),
    ("rtmp://h:1935/live", "", "rtmp://h:1935/live"),
])
def test_references_resolve_against_a_tc_url(base: str, reference: str, expected: str) -> None:
    assert resolve_url(base, reference) == expected


@pytest.mark.parametrize(("url", "app", "tc_url"), [
    ("rtmp://h/live", "live", "rtmp://h:1935/live"),
    ("rtmp://h/live/", "live", "rtmp://h:1935/live"),
    ("rtmp://h:1936/live/instance", "live/instance", "rtmp://h:1936/live/instance"),
    ("rtmp://h/a/b/c/", "a/b/c", "rtmp://h:1935/a/b/c"),
    ("rtmps://[::1]/live/instance?token=x", "live/instance?token=x",
     "rtmps://[::1]:443/live/instance?token=x"),
])
def test_a_tc_url_is_all_application(url: str, app: str, tc_url: str) -> None:
    """Review finding: a reconnect request's tcUrl was parsed as a stream URL,
    so ``rtmp://h/live/instance`` lost ``instance``."""
    u = parse_tc_url(url)
    assert (u.app, u.stream, u.tc_url) == (app, "", tc_url)
    assert "?" not in u.redacted
    assert parse_tc_url(u.tc_url) == u  # a session's tc_url round-trips


@pytest.mark.parametrize("url", ["http://h/live", "rtmp://h", "rtmp://h/", "rtmp://h//",
                                 "rtmp://h/a//b", "rtmp://h//a", "rtmp://h/?q",
                                 "rtmp://u@h/live", "rtmp://h:0/live"])
def test_bad_tc_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_tc_url(url)
