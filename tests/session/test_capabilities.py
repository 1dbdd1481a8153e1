"""Enhanced RTMP v2 connect negotiation and the reconnect request, sans I/O:
parsing what a peer advertises (hostile input included), the server's
answer (legacy byte for byte, enhanced), the client's connect and what it
reads back, NetConnection.Connect.ReconnectRequest both ways."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rtmpx import InvalidStateError, amf
from rtmpx.chunk import ChunkReader, ChunkWriter, Message
from rtmpx.events import Connected, ConnectRequest, Event, ReconnectRequested, Status
from rtmpx.session import SERVER_PROPERTIES, ClientSession, ServerSession
from rtmpx.session.base import MAX_NAME
from rtmpx.session.capabilities import (
    DEFAULT_CAPABILITIES,
    LEGACY,
    MAX_FOURCC_ENTRIES,
    RTMPX_FOURCCS,
    Capabilities,
    CapsEx,
    FourCcInfo,
)

from .test_session import Pair, command, of

# --- the values, checked against the spec's enums --------------------------------------


def test_the_masks_are_the_spec_values() -> None:
    # enum CapsExMask and enum FourCcInfoMask of Enhanced RTMP v2
    assert [int(f) for f in (CapsEx.RECONNECT, CapsEx.MULTITRACK, CapsEx.MOD_EX,
                             CapsEx.TIMESTAMP_NANO_OFFSET)] == [0x01, 0x02, 0x04, 0x08]
    assert [int(f) for f in (FourCcInfo.CAN_DECODE, FourCcInfo.CAN_ENCODE,
                             FourCcInfo.CAN_FORWARD)] == [0x01, 0x02, 0x04]


# --- parsing ---------------------------------------------------------------------------

def test_a_connect_object_is_read() -> None:
    caps = Capabilities.from_amf({
        "app": "live",
        "fourCcList": ["av01", "vp09", "hvc1", "Opus", ".mp3", "ac-3"],
        "videoFourCcInfoMap": {"*": 4.0, "vp09": 3.0},
        "audioFourCcInfoMap": amf.ECMAArray({"Opus": 7.0}),   # an ECMA array is read too
        "capsEx": 3.0,
    })
    assert caps.enhanced and caps.reconnect and caps.multitrack
    assert not caps.mod_ex and not caps.timestamp_nano_offset
    assert caps.fourcc_list == ("av01", "vp09", "hvc1", "Opus", ".mp3", "ac-3")
    # "*" applies on top of each codec's own flags (the spec's vp09 example)
    assert caps.video_flags("vp09") == FourCcInfo.CAN_DECODE | FourCcInfo.CAN_ENCODE \
        | FourCcInfo.CAN_FORWARD
    assert caps.video_flags("avc1") == FourCcInfo.CAN_FORWARD
    assert caps.audio_flags("Opus") == FourCcInfo(7) and caps.audio_flags("mp4a") == 0
    assert caps.supports("hvc1") and caps.supports("avc1") and not Capabilities().supports("avc1")


def test_nothing_said_is_legacy() -> None:
    for obj in ({}, {"app": "live", "capabilities": 15.0, "videoCodecs": 252.0}, None, [1], "x"):
        caps = Capabilities.from_amf(obj)
        assert caps == LEGACY and not caps.enhanced and not caps.reconnect


@pytest.mark.parametrize("value", [
    "hvc1", 7.0, None, True, {"0": "hvc1"}, amf.UNDEFINED, b"hvc1",
])
def test_a_fourcc_list_of_the_wrong_type_is_ignored(value: Any) -> None:
    assert Capabilities.from_amf({"fourCcList": value}).fourcc_list is None


def test_entries_that_are_not_fourccs_are_ignored() -> None:
    caps = Capabilities.from_amf({"fourCcList": [
        "hvc1", 1.0, None, True, ["av01"], {"x": 1}, "", "toolong", "ab", "\x00\x01\x02\x03",
        "h\u00e9vc", "**", "*", "hvc1"]})
    assert caps.fourcc_list == ("hvc1", "*")  # once each, in order


def test_masks_that_are_not_whole_numbers_are_ignored() -> None:
    bad: list[Any] = [True, -1.0, 0.5, math.nan, math.inf, -math.inf, 2.0 ** 32, "4", None,
                      [4.0], {"a": 4.0}]
    info = {f"c{i:03d}": v for i, v in enumerate(bad)} | {"good": 4.0, "zero": 0.0}
    caps = Capabilities.from_amf({"videoFourCcInfoMap": info, "audioFourCcInfoMap": "x"})
    assert dict(caps.video_fourcc_info or {}) == {"good": FourCcInfo.CAN_FORWARD,
                                                  "zero": FourCcInfo(0)}
    assert caps.audio_fourcc_info is None
    for value in bad:
        assert Capabilities.from_amf({"capsEx": value}).caps_ex is None
    # bits the spec does not define yet are kept, never mistaken for known ones
    future = Capabilities.from_amf({"capsEx": 0x31}).caps_ex
    assert future is not None and int(future) == 0x31 and CapsEx.RECONNECT in future


def test_huge_lists_and_maps_are_bounded() -> None:
    many = [f"{i:04d}" for i in range(100_000)]
    caps = Capabilities.from_amf({
        "fourCcList": many,
        "videoFourCcInfoMap": {k: 4.0 for k in many},
        "audioFourCcInfoMap": {("x" * 100_000) + str(i): 4.0 for i in range(100)},
    })
    assert caps.fourcc_list == tuple(many[:MAX_FOURCC_ENTRIES])
    assert list(caps.video_fourcc_info or {}) == many[:MAX_FOURCC_ENTRIES]
    assert dict(caps.audio_fourcc_info or {}) == {}


def test_written_and_read_back() -> None:
    body = amf.dumps_all(["connect", 1.0, DEFAULT_CAPABILITIES.to_amf()])
    # fresh objects each time: AMF0 references would be refused by peers (and by us)
    decoded = amf.loads_all(body, references=False)
    assert Capabilities.from_amf(decoded[2]) == DEFAULT_CAPABILITIES
    assert DEFAULT_CAPABILITIES.to_amf() == {
        "fourCcList": list(RTMPX_FOURCCS),
        "videoFourCcInfoMap": {"*": 4.0},
        "audioFourCcInfoMap": {"*": 4.0},
        "capsEx": 15.0,
    }
    assert Capabilities().to_amf() == {}
    assert Capabilities(caps_ex=CapsEx.RECONNECT).to_amf() == {"capsEx": 1.0}


def test_capabilities_cannot_be_changed_by_accident() -> None:
    info = {"*": FourCcInfo.CAN_FORWARD}
    caps = Capabilities(fourcc_list=["hvc1"], video_fourcc_info=info)  # type: ignore[arg-type]
    info["avc1"] = FourCcInfo.CAN_DECODE
    assert caps.fourcc_list == ("hvc1",) and "avc1" not in (caps.video_fourcc_info or {})
    with pytest.raises(TypeError):
        caps.video_fourcc_info["x"] = FourCcInfo(1)  # type: ignore[index]


# --- the server's answer ----------------------------------------------------------------

#: What rtmpx answered every connect before Enhanced RTMP negotiation existed
#: (taken from that code): Window Ack Size, Set Peer Bandwidth, Set Chunk Size,
#: then the connect _result.  A legacy connect must still get exactly this.
LEGACY_ANSWER = (
    "020000000000040500000000002625a04200000000000506002625a002420000000000040100001000"
    "030000000000cd14000000000200075f726573756c74003ff0000000000000030006666d7356657202"
    "000d464d532f332c302c312c313233000c6361706162696c697469657300403f00000000000000046d"
    "6f6465003ff00000000000000000090300056c6576656c0200067374617475730004636f646502001d"
    "4e6574436f6e6e656374696f6e2e436f6e6e6563742e53756363657373000b6465736372697074696f"
    "6e020015436f6e6e656374696f6e207375636365656465642e000e6f626a656374456e636f64696e67"
    "00{encoding}000009")
AMF0_ANSWER = bytes.fromhex(LEGACY_ANSWER.replace("{encoding}", "0000000000000000"))
AMF3_ANSWER = bytes.fromhex(LEGACY_ANSWER.replace("{encoding}", "4008000000000000"))

FFMPEG_PUBLISH = {"app": "live", "type": "nonprivate",
                  "flashVer": "FMLE/3.0 (compatible; Lavf63.1.102)",
                  "tcUrl": "rtmp://127.0.0.1/live"}
FFMPEG_PLAY = {"app": "live", "flashVer": "LNX 9,0,124,2", "tcUrl": "rtmp://127.0.0.1/live",
               "fpad": False, "capabilities": 15.0, "audioCodecs": 4071.0,
               "videoCodecs": 252.0, "videoFunction": 1.0}


def answer(params: dict[str, Any], **server_kw: Any) -> tuple[bytes, list[Event]]:
    """What a server answers a connect with ``params`` (and its events)."""
    server = ServerSession(random=bytes, **server_kw)
    client = ClientSession("live", "rtmp://h/live", random=bytes)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    server.data_to_send()
    events = server.receive_data(ChunkWriter().encode(
        Message(20, amf.dumps_all(["connect", 1.0, params]), 0, 0, 3)))
    server.accept_connect()
    return server.data_to_send(), events


def answer_result(data: bytes) -> list[Any]:
    commands = [amf.loads_all(m.payload) for m in ChunkReader().feed(data) if m.type_id == 20]
    assert len(commands) == 1 and commands[0][0] == "_result"
    return commands[0]


@pytest.mark.parametrize("params", [FFMPEG_PUBLISH, FFMPEG_PLAY, {"app": "live"}],
                         ids=["ffmpeg-publish", "ffmpeg-play", "bare"])
def test_a_legacy_connect_gets_the_legacy_answer_byte_for_byte(params: dict[str, Any]) -> None:
    data, events = answer(params)
    assert data == AMF0_ANSWER
    assert of(ConnectRequest, events)[0].capabilities == LEGACY
    data, _ = answer({**params, "objectEncoding": 3.0})
    assert data == AMF3_ANSWER


def test_a_connect_with_unreadable_fields_gets_the_legacy_answer() -> None:
    data, events = answer({**FFMPEG_PUBLISH, "fourCcList": "hvc1", "capsEx": "1",
                           "videoFourCcInfoMap": [1, 2]})
    assert data == AMF0_ANSWER and not of(ConnectRequest, events)[0].capabilities.enhanced


@pytest.mark.parametrize("field", ["fourCcList", "videoFourCcInfoMap", "audioFourCcInfoMap",
                                   "capsEx"])
def test_an_enhanced_connect_gets_the_servers_capabilities(field: str) -> None:
    value = {"fourCcList": ["hvc1"], "videoFourCcInfoMap": {"hvc1": 1.0},
             "audioFourCcInfoMap": {"Opus": 1.0}, "capsEx": 0.0}[field]
    data, events = answer({**FFMPEG_PUBLISH, field: value})
    request = of(ConnectRequest, events)[0]
    assert request.capabilities.enhanced
    _, txn, properties, info = answer_result(data)
    assert txn == 1.0
    # the spec: in the properties of the _result, after what servers always said
    assert list(properties)[:3] == list(SERVER_PROPERTIES)
    assert properties == {**SERVER_PROPERTIES, **DEFAULT_CAPABILITIES.to_amf()}
    assert Capabilities.from_amf(properties) == DEFAULT_CAPABILITIES
    assert info == {"level": "status", "code": "NetConnection.Connect.Success",
                    "description": "Connection succeeded.", "objectEncoding": 0.0}


def test_what_the_server_says_is_configurable() -> None:
    mine = Capabilities(video_fourcc_info={"hvc1": FourCcInfo.CAN_FORWARD},
                        caps_ex=CapsEx.MULTITRACK)
    data, _ = answer({**FFMPEG_PUBLISH, "capsEx": 1.0}, capabilities=mine)
    properties = answer_result(data)[2]
    assert properties == {**SERVER_PROPERTIES, "videoFourCcInfoMap": {"hvc1": 4.0},
                          "capsEx": 2.0}
    # None (or nothing): the legacy answer to everyone
    for legacy in (None, Capabilities()):
        data, _ = answer({**FFMPEG_PUBLISH, "capsEx": 1.0}, capabilities=legacy)
        assert data == AMF0_ANSWER


def test_properties_given_by_the_application_win() -> None:
    pair = Pair()
    pair.client.connect()
    pair.pump()
    pair.server.accept_connect({"fmsVer": "mine", "capsEx": 1.0})
    _, got = pair.pump()
    connected = of(Connected, got)[0]
    assert connected.properties["fmsVer"] == "mine" and connected.properties["capsEx"] == 1.0
    assert connected.properties["fourCcList"] == list(RTMPX_FOURCCS)


def test_a_hostile_connect_is_bounded_and_answered() -> None:
    # as much junk as a connect may carry: every field wrong or huge
    params = {"app": "live", "tcUrl": "rtmp://h/live",
              "fourCcList": [None, 1.0, {"a": 1.0}, "x" * 60, *(["hvc1"] * 5000)],
              "videoFourCcInfoMap": {str(i): float(i) for i in range(2000)},
              "audioFourCcInfoMap": {"Opus": {"nested": [1.0]}, "mp4a": math.nan},
              "capsEx": -5.0}
    data, events = answer(params)
    caps = of(ConnectRequest, events)[0].capabilities
    assert caps.fourcc_list == ("hvc1",) and caps.caps_ex is None
    assert dict(caps.audio_fourcc_info or {}) == {}
    assert len(caps.video_fourcc_info or {}) <= MAX_FOURCC_ENTRIES
    assert answer_result(data)[2] == {**SERVER_PROPERTIES, **DEFAULT_CAPABILITIES.to_amf()}


# --- the client's connect and what it reads back ---------------------------------------

def sent_connect(client: ClientSession) -> dict[str, Any]:
    server = ServerSession()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    events = server.receive_data(client.data_to_send())
    request: ConnectRequest = of(ConnectRequest, events)[0]
    return request.params


def test_the_client_advertises_what_rtmpx_supports() -> None:
    client = ClientSession("live", "rtmp://h/live")
    client.connect()
    params = sent_connect(client)
    assert params["fourCcList"] == list(RTMPX_FOURCCS)
    assert params["videoFourCcInfoMap"] == {"*": 4.0} == params["audioFourCcInfoMap"]
    assert params["capsEx"] == 15.0
    assert list(params)[:4] == ["app", "type", "flashVer", "tcUrl"]


@pytest.mark.parametrize("legacy", [None, Capabilities()])
def test_a_client_can_advertise_nothing(legacy: Capabilities | None) -> None:
    client = ClientSession("live", "rtmp://h/live", capabilities=legacy)
    client.connect()
    assert sent_connect(client) == {"app": "live", "type": "nonprivate",
                                    "flashVer": "FMLE/3.0 (compatible; rtmpx)",
                                    "tcUrl": "rtmp://h/live"}


def test_params_win_over_the_capabilities() -> None:
    client = ClientSession("live", "rtmp://h/live", params={"capsEx": 2.0})
    client.connect()
    assert sent_connect(client)["capsEx"] == 2.0


def test_both_ends_see_each_others_capabilities() -> None:
    pair = Pair()
    pair.connect()
    assert of(ConnectRequest, pair.server_events)[0].capabilities == DEFAULT_CAPABILITIES
    assert pair.server.peer_capabilities == DEFAULT_CAPABILITIES
    assert of(Connected, pair.client_events)[0].capabilities == DEFAULT_CAPABILITIES
    assert pair.client.server_capabilities == DEFAULT_CAPABILITIES


def connected_client(**kw: Any) -> tuple[ClientSession, ChunkWriter]:
    """A ClientSession whose connect is sent, and a writer of server messages."""
    client = ClientSession("live", "rtmp://h:1935/live", **kw)
    server = ServerSession()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    client.connect()
    client.data_to_send()
    return client, ChunkWriter()


SUCCESS = {"level": "status", "code": "NetConnection.Connect.Success"}


@pytest.mark.parametrize(("properties", "info", "expected"), [
    (SERVER_PROPERTIES, SUCCESS, LEGACY),                         # a legacy server
    (None, SUCCESS, LEGACY),
    ({**SERVER_PROPERTIES, "capsEx": 1.0}, SUCCESS, Capabilities(caps_ex=CapsEx.RECONNECT)),
    # some servers put them in the information object: read there too
    (SERVER_PROPERTIES, {**SUCCESS, "capsEx": 3.0}, Capabilities(caps_ex=CapsEx(3))),
    ({"capsEx": "junk", "fourCcList": 5.0}, SUCCESS, LEGACY),
])
def test_what_the_server_answered(properties: Any, info: dict[str, Any],
                                  expected: Capabilities) -> None:
    client, w = connected_client()
    events = client.receive_data(w.encode(command("_result", 1, properties, info)))
    assert of(Connected, events)[0].capabilities == expected == client.server_capabilities


# --- the reconnect request ----------------------------------------------------------------

def reconnect_status(**info: Any) -> Message:
    return command("onStatus", 0, None, {"level": "status",
                                         "code": "NetConnection.Connect.ReconnectRequest",
                                         **info})


def test_the_server_sends_it_the_way_the_spec_says() -> None:
    server = ServerSession()
    client = ClientSession("live", "rtmp://h/live")
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    server.data_to_send()
    server.receive_data(ChunkWriter().encode(command("connect", 1, {"app": "live",
                                                                    "capsEx": 1.0})))
    server.accept_connect()
    reader = ChunkReader()
    reader.feed(server.data_to_send())
    server.send_reconnect_request("rtmp://other:1936/live", "Going down for updates.")
    messages = reader.feed(server.data_to_send())
    assert [(m.type_id, m.stream_id) for m in messages] == [(20, 0)]
    assert amf.loads_all(messages[0].payload) == [
        "onStatus", 0.0, None,
        {"level": "status", "code": "NetConnection.Connect.ReconnectRequest",
         "description": "Going down for updates.", "tcUrl": "rtmp://other:1936/live"}]
    assert server.reconnect_requested
    server.send_reconnect_request()  # no tcUrl: the same server
    info = amf.loads_all(reader.feed(server.data_to_send())[0].payload)[3]
    assert "tcUrl" not in info and info["level"] == "status"


def test_the_client_reports_it() -> None:
    pair = Pair()
    pair.connect()
    pair.server.send_reconnect_request("rtmp://other:1936/live", "Going down.")
    _, got = pair.pump()
    status = of(Status, got)[0]
    assert (status.stream_id, status.code) == (0, "NetConnection.Connect.ReconnectRequest")
    request = of(ReconnectRequested, got)[0]
    assert (request.tc_url, request.description) == ("rtmp://other:1936/live", "Going down.")
    assert request.info["tcUrl"] == "rtmp://other:1936/live"
    pair.server.send_reconnect_request(description="Again.")
    _, got = pair.pump()
    assert of(ReconnectRequested, got)[0].tc_url == "rtmp://127.0.0.1/live"  # the same server


def test_a_legacy_client_is_never_sent_one() -> None:
    pair = Pair(capabilities=None)
    with pytest.raises(InvalidStateError):
        pair.server.send_reconnect_request()  # not even connected
    pair.connect()
    with pytest.raises(InvalidStateError, match="Reconnect"):
        pair.server.send_reconnect_request()
    assert pair.server.data_to_send() == b"" and not pair.server.reconnect_requested
    pair = Pair(capabilities=Capabilities(caps_ex=CapsEx.MULTITRACK))  # enhanced, no Reconnect
    pair.connect()
    with pytest.raises(InvalidStateError):
        pair.server.send_reconnect_request()


def test_a_tc_url_of_any_length_is_refused() -> None:
    pair = Pair()
    pair.connect()
    with pytest.raises(ValueError):
        pair.server.send_reconnect_request("rtmp://h/" + "x" * MAX_NAME)


@pytest.mark.parametrize(("tc_url", "expected"), [
    ("rtmp://foo.mydomain.com:1935/realtimeapp", "rtmp://foo.mydomain.com:1935/realtimeapp"),
    ("rtmps://foo/realtimeapp", "rtmps://foo/realtimeapp"),
    ("//192.0.2.0/realtimeapp", "rtmp://192.0.2.0/realtimeapp"),   # the spec's examples
    ("/realtimeapp", "rtmp://h:1935/realtimeapp"),
    ("realtimeapp", "rtmp://h:1935/realtimeapp"),
    ("", "rtmp://h:1935/live"),
])
def test_a_relative_tc_url_is_resolved(tc_url: str, expected: str) -> None:
    client, w = connected_client()
    client.receive_data(w.encode(command("_result", 1, None, SUCCESS)))
    events = client.receive_data(w.encode(reconnect_status(tcUrl=tc_url)))
    assert of(ReconnectRequested, events)[0].tc_url == expected


@pytest.mark.parametrize("tc_url", [
    5.0, ["rtmp://x/y"], {"a": 1.0}, "http://example.com/live", "rtmp://", "rtmp://h:99999/live",
    "rtmp://h/" + "x" * (MAX_NAME + 1),
])
def test_a_request_to_nowhere_is_ignored(tc_url: Any) -> None:
    client, w = connected_client()
    client.receive_data(w.encode(command("_result", 1, None, SUCCESS)))
    events = client.receive_data(w.encode(reconnect_status(tcUrl=tc_url)))
    assert of(Status, events) and not of(ReconnectRequested, events)


@pytest.mark.parametrize("info", [
    {"level": "error", "code": "NetConnection.Connect.ReconnectRequest"},   # level must be status
    {"level": "status", "code": "NetConnection.Connect.Closed"},
    {"level": "status"},
    "not an object",
])
def test_other_netconnection_statuses_are_information_only(info: Any) -> None:
    client, w = connected_client()
    client.receive_data(w.encode(command("_result", 1, None, SUCCESS)))
    events = client.receive_data(w.encode(command("onStatus", 0, None, info)))
    assert not of(ReconnectRequested, events) and client.state.name == "CONNECTED"


def test_a_client_that_advertised_nothing_still_reports_it() -> None:
    # a server that asks anyway: the application decides what to do
    client, w = connected_client(capabilities=None)
    client.receive_data(w.encode(command("_result", 1, None, SUCCESS)))
    events = client.receive_data(w.encode(reconnect_status(description="x" * 5000)))
    request = of(ReconnectRequested, events)[0]
    assert request.tc_url == "rtmp://h:1935/live" and len(request.description) == 1000
