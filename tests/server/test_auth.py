"""The ready-made checks (tokens, application allow-lists, all_of): unit
tests, then a real server with the rtmpx client, the CLI and FFmpeg."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

import rtmpx
from rtmpx.__main__ import main
from rtmpx.server import Request, Server
from rtmpx.server.auth import AllowApps, Denied, TokenAuth, all_of, load_tokens
from rtmpx.server.hooks import Hooks, TaskSet

from ..peers import ffmpeg_exe, free_port, lavfi_publish_args, live, run, wait_for


def request(query: str = "", *, action: str = "publish", app: str = "live",
            name: str = "key", connect_app: str | None = None,
            tc_url: str | None = None) -> Request:
    """A request as the server makes it: ``query`` is the stream name's;
    ``connect_app``/``tc_url`` are what the connect sent."""
    tc_url = f"rtmp://example.com:1935/{app}" if tc_url is None else tc_url
    params = {"app": app if connect_app is None else connect_app, "tcUrl": tc_url}
    return Request(action, app, name, query, "203.0.113.9:50000", tc_url,
                   connect_params=params)


def denied(check: Any, req: Request) -> str:
    """The reason ``check`` refuses ``req`` with."""
    with pytest.raises(Denied) as info:
        check(req)
    return str(info.value)


# --- TokenAuth ------------------------------------------------------------------------

def test_right_wrong_and_missing_token() -> None:
    auth = TokenAuth("s3cret")
    assert auth(request("token=s3cret")) is True
    assert auth(request("other=1&token=s3cret")) is True
    assert denied(auth, request("token=s3cre")) == "Invalid token."
    assert denied(auth, request("token=s3cret2")) == "Invalid token."
    assert denied(auth, request("token=S3CRET")) == "Invalid token."
    assert denied(auth, request("")) == "Missing token."
    assert denied(auth, request("token=")) == "Missing token."
    assert denied(auth, request("token")) == "Missing token."
    assert denied(auth, request("tok=s3cret")) == "Missing token."
    assert denied(auth, request("token=&token=s3cret")) == "Missing token."  # the first counts


def test_the_reason_and_repr_never_show_a_token() -> None:
    auth = TokenAuth(["s3cret", "other"])
    for query in ("token=s3cre", "token=s3cretX", "token=a%20b"):
        reason = denied(auth, request(query))
        assert "s3cre" not in reason and query.partition("=")[2] not in reason
    assert "s3cret" not in repr(auth) and "other" not in repr(auth)
    assert repr(auth) == "TokenAuth(<2 token(s)>, param='token', connect_query=True)"


def test_several_tokens_any_of_them() -> None:
    auth = TokenAuth(["alpha", "beta", "alpha"])
    assert len(auth) == 2  # duplicates counted once
    assert auth(request("token=alpha")) and auth(request("token=beta"))
    assert denied(auth, request("token=gamma")) == "Invalid token."
    assert auth.is_valid("beta") and not auth.is_valid("") and not auth.is_valid("alph")


def test_a_string_is_one_token_not_its_characters() -> None:
    auth = TokenAuth("abc")
    assert len(auth) == 1 and auth(request("token=abc"))
    assert denied(auth, request("token=a")) == "Invalid token."


def test_non_ascii_tokens_compare_as_utf8() -> None:
    auth = TokenAuth("pässwört-🔑")
    assert auth(request("token=pässwört-🔑"))  # raw UTF-8 in the stream name
    assert auth(request("token=p%C3%A4ssw%C3%B6rt-%F0%9F%94%91"))  # percent-encoded UTF-8
    assert denied(auth, request("token=p%E4ssw%F6rt-")) == "Invalid token."  # Latin-1
    assert denied(auth, request("token=pa\u0308sswo\u0308rt-🔑")) == "Invalid token."  # NFD
    assert denied(auth, request("token=\udcff")) == "Invalid token."  # a lone surrogate


def test_query_is_form_decoded() -> None:
    auth = TokenAuth("a+b/c=")  # base64-ish: "+" must be sent as %2B
    assert auth(request("token=a%2Bb/c%3D"))
    assert denied(auth, request("token=a+b/c=")) == "Invalid token."  # "+" is a space


def test_token_in_the_connect_query() -> None:
    auth = TokenAuth("s3cret")
    # OBS: server rtmp://host/live?token=s3cret, key "key": the app field carries it
    obs = request(connect_app="live?token=s3cret",
                  tc_url="rtmp://example.com:1935/live?token=s3cret")
    assert auth(obs)
    # only the tcUrl carries it
    assert auth(request(tc_url="rtmp://example.com/live?token=s3cret"))
    # the stream name's token, when there is one, is the one checked
    assert denied(auth, request("token=wrong", connect_app="live?token=s3cret")) \
        == "Invalid token."
    assert denied(auth, request(connect_app="live?token=wrong")) == "Invalid token."
    # switched off: only the stream name counts
    strict = TokenAuth("s3cret", connect_query=False)
    assert denied(strict, obs) == "Missing token."
    assert strict(request("token=s3cret"))
    # as an on_connect hook, the connect's own query is the request's query
    assert auth(request("token=s3cret", action="connect", name=""))


def test_token_parameter_name() -> None:
    auth = TokenAuth("k", param="key")
    assert auth(request("key=k"))
    assert denied(auth, request("token=k")) == "Missing key."


def test_tokens_must_be_given() -> None:
    with pytest.raises(ValueError):
        TokenAuth([])
    with pytest.raises(ValueError):
        TokenAuth(["ok", ""])
    with pytest.raises(ValueError):
        TokenAuth("\udcff")
    with pytest.raises(ValueError):
        TokenAuth("x", param="")
    with pytest.raises(TypeError):
        TokenAuth([b"bytes"])  # type: ignore[list-item]


def test_load_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_bytes("\ufeff# publishers\r\n  alpha  \r\n\r\nbéta\n#not-a-token\n".encode())
    assert load_tokens(path) == ["alpha", "béta"]
    auth = TokenAuth(load_tokens(str(path)))
    assert auth(request("token=b%C3%A9ta"))
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(ValueError, match="no token"):
        load_tokens(empty)
    with pytest.raises(OSError):
        load_tokens(tmp_path / "missing")


# --- AllowApps ------------------------------------------------------------------------

def test_app_allow_list_is_exact() -> None:
    apps = AllowApps(["live", "/studio/"])
    assert apps.apps == {"live", "studio"}
    assert apps(request(app="live")) and apps(request(app="studio"))
    assert denied(apps, request(app="vod")) == "Publish is not allowed in application 'vod'."
    assert denied(apps, request(app="Live", action="play")) \
        == "Play is not allowed in application 'Live'."
    assert denied(apps, request(app="live/instance"))
    assert denied(AllowApps("live"), request(app="l"))  # a string is one name
    assert denied(AllowApps([]), request(app="live"))  # none listed: nothing allowed
    long = denied(apps, request(app="x" * 5000))
    assert len(long) < 120 and long.endswith("...'.")
    with pytest.raises(ValueError):
        AllowApps(["live", "/"])


# --- all_of, and what the server makes of a refusal -------------------------------------

async def test_all_of_runs_in_order_and_stops_at_the_first_refusal() -> None:
    ran: list[str] = []

    async def mine(req: Request) -> bool:
        ran.append(req.name)
        return req.name != "blocked"

    hook = all_of(AllowApps("live"), None, TokenAuth("s3cret"), mine)
    assert await hook(request("token=s3cret")) is True
    assert ran == ["key"]
    assert await hook(request("token=s3cret", name="blocked")) is False
    with pytest.raises(Denied, match="Invalid token."):
        await hook(request("token=nope"))
    with pytest.raises(Denied, match="not allowed"):
        await hook(request("token=s3cret", app="vod"))
    assert ran == ["key", "blocked"]  # the refusals before it kept it from running

    def raises(req: Request) -> None:
        raise PermissionError("quota exceeded")

    with pytest.raises(PermissionError, match="quota"):
        await all_of(raises, mine)(request())
    assert await all_of(lambda req: None)(request()) is True  # only False refuses
    assert await all_of()(request()) is True


async def test_the_server_answers_with_the_reason() -> None:
    hooks = Hooks(TaskSet(), on_publish=all_of(TokenAuth("s3cret")),
                  on_play=AllowApps("live"))
    assert await hooks.ask("on_publish", request("token=s3cret")) == (True, "")
    assert await hooks.ask("on_publish", request("token=x")) == (False, "Invalid token.")
    assert await hooks.ask("on_play", request(app="vod", action="play")) \
        == (False, "Play is not allowed in application 'vod'.")


# --- a real server and the rtmpx client ---------------------------------------------------

async def publishes(url: str, name: str | None = None) -> bool:
    """Whether the server accepts a publish (True) or refuses it (StatusError)."""
    async with rtmpx.connect(url, timeout=10) as client:
        stream = await client.publish(name)
        await stream.send_video(0, b"\x17\x00\x00\x00\x00")
        await stream.close()
    return True


async def refusal(url: str, name: str | None = None) -> rtmpx.StatusError:
    async with rtmpx.connect(url, timeout=10) as client:
        with pytest.raises(rtmpx.StatusError) as info:
            await client.publish(name)
        assert not client.closed  # a refused publish leaves the connection open
    return info.value


async def test_publish_needs_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rtmpx.server")
    async with Server(port=0, on_publish=TokenAuth(["s3cret", "päss"])) as server:
        base = f"rtmp://127.0.0.1:{server.port}"
        assert await publishes(f"{base}/live/cam?token=s3cret")
        assert await publishes(f"{base}/live/cam?token=p%C3%A4ss")
        assert await publishes(f"{base}/live?token=s3cret", "cam")  # OBS: in the server URL
        wrong = await refusal(f"{base}/live/cam?token=s3cre")
        assert wrong.code == rtmpx.StatusCode.PUBLISH_REJECTED  # NetStream.Publish.Rejected
        assert wrong.description == "Invalid token."
        assert wrong.info["details"] == "cam"  # the name without its query
        missing = await refusal(f"{base}/live/cam")
        assert missing.code == "NetStream.Publish.Rejected"
        assert missing.description == "Missing token."
        assert not live(server, "live/cam")
    server_log = [r.getMessage() for r in caplog.records if r.name == "rtmpx.server"]
    assert not any("s3cre" in line for line in server_log)
    assert any("publish live/cam rejected: Invalid token." in line for line in server_log)


async def test_play_by_application_and_a_users_hook_after_the_checks() -> None:
    seen: list[str] = []

    async def on_play(req: Request) -> bool:  # the user's own hook, run last
        seen.append(str(req.key))
        return req.name != "private"

    async with Server(port=0, on_publish=AllowApps("live"),
                      on_play=all_of(AllowApps(["live", "vod"]), on_play)) as server:
        base = f"rtmp://127.0.0.1:{server.port}"
        async with rtmpx.connect(f"{base}/live", timeout=10) as client:
            await client.play("cam")  # NetStream.Play.Start: waiting for a publisher
        async with rtmpx.connect(f"{base}/vod", timeout=10) as client:
            await client.play("film")
        async with rtmpx.connect(f"{base}/other", timeout=10) as client:
            with pytest.raises(rtmpx.StatusError) as info:
                await client.play("cam")
            assert info.value.code == rtmpx.StatusCode.PLAY_FAILED
            assert info.value.description == "Play is not allowed in application 'other'."
            with pytest.raises(rtmpx.StatusError) as info:
                await client.publish("cam")
            assert info.value.description == "Publish is not allowed in application 'other'."
        async with rtmpx.connect(f"{base}/live", timeout=10) as client:
            with pytest.raises(rtmpx.StatusError):
                await client.play("private")
        assert await publishes(f"{base}/live/cam")  # publish: app only, no token
    assert seen == ["live/cam", "vod/film", "live/private"]  # never for 'other'


# --- the CLI ------------------------------------------------------------------------

async def test_cli_serve_with_a_token_file(tmp_path: Path) -> None:
    tokens = tmp_path / "publish.tokens"
    tokens.write_text("# publishers\nalpha\nbeta\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTMPX_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rtmpx", "--log-level", "info", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--publish-token-file", str(tokens), "--publish-app", "live",
        "--play-app", "live", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        banner = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert f"rtmp://127.0.0.1:{port}/" in banner.decode()
        base = f"rtmp://127.0.0.1:{port}"
        assert await publishes(f"{base}/live/cam?token=beta")
        assert (await refusal(f"{base}/live/cam?token=gamma")).description == "Invalid token."
        assert (await refusal(f"{base}/live/cam")).description == "Missing token."
        assert "not allowed" in (await refusal(f"{base}/vod/cam?token=alpha")).description
        async with rtmpx.connect(f"{base}/live", timeout=10) as client:
            await client.play("cam")  # play: no token asked for
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        err = (await proc.communicate())[1].decode()  # both pipes to their end: closed
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "publish live/cam rejected: Invalid token." in err
    assert "gamma" not in err and "alpha" not in err and "beta" not in err


def test_cli_refuses_to_start_open_by_mistake(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.tokens"
    empty.write_text("\n# to do\n")
    monkeypatch.delenv("RTMPX_PUBLISH_TOKEN", raising=False)
    monkeypatch.delenv("RTMPX_PLAY_TOKEN", raising=False)
    assert main(["serve", "--port", "0", "--publish-token-file", str(empty)]) == 2
    assert "no token in" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--publish-token-file", str(tmp_path / "no")]) == 2
    assert "rtmpx: error:" in capsys.readouterr().err
    assert main(["serve", "--port", "0", "--play-token", ""]) == 2
    assert "empty" in capsys.readouterr().err
    monkeypatch.setenv("RTMPX_PUBLISH_TOKEN", " , ")
    assert main(["serve", "--port", "0"]) == 2
    assert "$RTMPX_PUBLISH_TOKEN is set but holds no token" in capsys.readouterr().err


def test_cli_hooks_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from rtmpx.__main__ import _access

    monkeypatch.setenv("RTMPX_PUBLISH_TOKEN", "one, two")
    hook = _access([], ["three"], [], "RTMPX_PUBLISH_TOKEN")
    assert hook is not None
    for token in ("one", "two", "three"):
        assert asyncio.run(hook(request(f"token={token}"))) is True
    with pytest.raises(Denied):
        asyncio.run(hook(request("token=four")))
    monkeypatch.delenv("RTMPX_PUBLISH_TOKEN")
    assert _access([], [], [], "RTMPX_PUBLISH_TOKEN") is None  # nothing asked: open


# --- FFmpeg --------------------------------------------------------------------------

@pytest.mark.interop
async def test_ffmpeg_publishes_with_the_token_only() -> None:
    ffmpeg = ffmpeg_exe()

    def publish(url: str) -> list[str]:
        return [ffmpeg, "-hide_banner", "-loglevel", "error", "-re", *lavfi_publish_args(1.0),
                "-f", "flv", url]

    async with Server(port=0, on_publish=all_of(AllowApps("live"), TokenAuth("s3cret"))) \
            as server:
        base = f"rtmp://127.0.0.1:{server.port}/live/key"
        code, err = await run(*publish(base), timeout=30)
        assert code != 0, "published without a token"
        code, err = await run(*publish(base + "?token=wrong"), timeout=30)
        assert code != 0, "published with a wrong token"
        assert not live(server, "live/key")
        seen = asyncio.create_task(wait_for(lambda: live(server, "live/key"), timeout=30))
        code, err = await run(*publish(base + "?token=s3cret"), timeout=30)
        assert code == 0, err
        await seen  # it was live while FFmpeg published
