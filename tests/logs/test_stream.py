"""The log socket under the real waitress server, with real containers and real WebSocket clients."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest
import requests
from simple_websocket import ConnectionError as HandshakeRefused

from tests.logs.conftest import Reader
from tests.logs.conftest import container_logs
from tests.support.live import wait_for

pytestmark = pytest.mark.docker


def open_logs(server, session, query: str) -> Reader:
    return Reader(server.ws_connect("/logs/-/ws?" + query, session))


def health(server) -> dict:
    return requests.get(server.url + "/api/health", timeout=5).json()


def threads(server) -> int:
    with open(f"/proc/{server.proc.pid}/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


def docker_connections(server) -> int:
    """Open connections of the server process to the Docker socket (unix sockets it holds)."""
    fd_dir = f"/proc/{server.proc.pid}/fd"
    count = 0
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def test_known_lines_arrive_escaped_coloured_and_cut(logs_server, talker):
    server = logs_server(talker)
    reader = open_logs(server, server.session(), "s=talker&tail=all&follow=0")
    try:
        reader.until(Reader.ended, message="end of history")
    finally:
        reader.close()
    assert reader.messages[0] == {"t": "hello", "services": ["talker"]}
    html = reader.html()
    # stdout and stderr are stamped by separate engine copiers: only stdout's own order is fixed.
    assert [line[4] for line in reader.lines if not line[3]][0] == "plain line one"
    assert '<span class="a-f1">red text</span> and <span class="a-f2 a-bold">bold green</span>' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in html
    assert not any("<script" in h for h in html)
    assert "bad utf8: \ufffd\ufffd end" in html
    assert "cursormove done" in html
    err = [line for line in reader.lines if line[3] == 1]
    assert [line[4] for line in err] == ["to stderr"]
    long_line = next(h for h in html if h.startswith("yyyy"))
    assert long_line == "y" * 16384 + '<span class="cut">… [line cut: 86,016 more bytes]</span>'
    assert html.index(long_line) < html.index("after long") < html.index("READY")
    assert all(line[2] == 0 for line in reader.lines)


def test_merged_view_of_three_services_interleaves_by_time(logs_server, chorus):
    server = logs_server(chorus)
    reader = open_logs(server, server.session(), "tail=all&follow=0")
    try:
        reader.until(Reader.ended, message="end of history")
    finally:
        reader.close()
    services = reader.messages[0]["services"]
    assert services == ["alpha", "bravo", "charlie"]
    keys = [line[0] for line in reader.lines]
    assert keys == sorted(keys)
    # The truth: every container's own `docker logs -t`, merged by the engine's timestamps.
    truth = sorted(
        (ln.split(" ", 1)[0], ln.split(" ", 1)[1])
        for svc in services
        for ln in container_logs(chorus, svc, "-t").splitlines()
    )
    assert [(line[1], line[4]) for line in reader.lines] == truth
    order = [services[line[2]] for line in reader.lines]
    switches = sum(1 for a, b in zip(order, order[1:], strict=False) if a != b)
    assert switches >= 6, f"services not interleaved: {order}"
    assert all(line[4].startswith(services[line[2]]) for line in reader.lines)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=RED", ['<span class="a-f1"><mark>red</mark> text</span> and <span class="a-f2 a-bold">bold green</span>']),
        (
            "q=/bold%5Cs%2Bgr/",
            ['<span class="a-f1">red text</span> and <span class="a-f2 a-bold"><mark>bold gr</mark>een</span>'],
        ),
        ("q=/^(plain|after)/", ["<mark>plain</mark> line one", "<mark>after</mark> long"]),
        ("q=%3Cscript", ["<mark>&lt;script</mark>&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"]),
    ],
)
def test_filter_plain_and_regex_narrow_on_the_server_and_highlight(logs_server, talker, query, expected):
    server = logs_server(talker)
    reader = open_logs(server, server.session(), f"s=talker&tail=all&follow=0&{query}")
    try:
        reader.until(Reader.ended, message="end of history")
    finally:
        reader.close()
    assert reader.html() == expected


def test_bad_regex_gets_an_inline_message(logs_server, talker):
    server = logs_server(talker)
    reader = open_logs(server, server.session(), "s=talker&q=/(unclosed/")
    reader.until(lambda r: any(m["t"] == "error" for m in r.messages), message="error message")
    error = next(m for m in reader.messages if m["t"] == "error")
    assert error["field"] == "q"
    assert error["text"].startswith("Invalid regular expression: missing )")
    reader.until(lambda r: r.closed, message="socket closed by the server")
    wait_for(lambda: health(server)["websockets"] == 0, message="socket released")
    # The page itself says so too, without JavaScript.
    page = server.session().get(server.url + "/logs/talker", params={"q": "/(unclosed/"}, timeout=10)
    assert page.status_code == 200
    assert "Invalid regular expression" in page.text


def test_follow_continues_across_a_container_restart(logs_server, ticker):
    server = logs_server(ticker)
    reader = open_logs(server, server.session(), "s=ticker&tail=5")
    try:
        reader.until(lambda r: len(r.lines) >= 8, message="live ticks")
        ticker.compose("restart", "-t", "1", "ticker")
        reader.until(
            lambda r: any(e.get("t") == "note" and e.get("kind") == "restart" for e in r.events),
            timeout=20,
            message="restart note",
        )
        seen = len(reader.lines)
        reader.until(
            lambda r: len(r.lines) >= seen + 5 and r.lines[-1][4] == "tick 5",
            timeout=20,
            message="ticks of the restarted container",
        )
        stamps = [line[1] for line in reader.lines]
        assert len(stamps) == len(set(stamps)), "a line was sent twice"
    finally:
        reader.close()


def test_closing_the_client_releases_thread_socket_and_docker_stream(logs_server, ticker):
    server = logs_server(ticker)
    session = server.session()
    session.get(server.url + "/services", timeout=10)  # the table warms the engine's pool, as "/" once did
    base_threads, base_sockets = threads(server), docker_connections(server)
    for abrupt in (False, True):
        reader = open_logs(server, session, "s=ticker&tail=1")
        reader.until(lambda r: len(r.lines) >= 3, message="live ticks")
        assert health(server)["websockets"] == 1
        assert threads(server) > base_threads
        if abrupt:  # a crashed browser or a dropped network: no close frame
            reader.ws.sock.shutdown(socket.SHUT_RDWR)
            reader.ws.sock.close()
        else:
            reader.close()
        wait_for(lambda: health(server)["websockets"] == 0, timeout=10, message="socket released")
        wait_for(lambda: threads(server) <= base_threads, timeout=10, message="threads back to baseline")
        wait_for(
            lambda: docker_connections(server) <= base_sockets,
            timeout=10,
            message="Docker connections back to baseline",
        )


def test_concurrent_viewer_cap_says_too_many(logs_server, ticker):
    server = logs_server(ticker, STACKPILOT_MAX_LOG_SOCKETS="3")
    session = server.session()
    readers = [open_logs(server, session, "s=ticker&tail=1") for _ in range(3)]
    try:
        for r in readers:
            r.until(lambda r: r.lines, message="lines on an allowed socket")
        extra = open_logs(server, session, "s=ticker&tail=1")
        extra.until(lambda r: r.messages, message="refusal")
        assert extra.messages[0]["t"] == "full"
        assert "Too many open log views (3)" in extra.messages[0]["text"]
        extra.until(lambda r: r.closed, message="refused socket closed")
        assert requests.get(server.url + "/api/health", timeout=2).status_code == 200
        readers.pop().close()
        wait_for(lambda: health(server)["websockets"] == 2, message="one released")
        again = open_logs(server, session, "s=ticker&tail=1")
        again.until(lambda r: r.lines, message="a slot is free again")
        readers.append(again)
    finally:
        for r in readers:
            r.close()


def test_foreign_origin_and_anonymous_handshakes_are_refused(logs_server, ticker):
    server = logs_server(ticker)
    session = server.session()
    with pytest.raises(HandshakeRefused, match="403"):
        server.ws_connect("/logs/-/ws?s=ticker", session, origin="http://evil.example")
    with pytest.raises(HandshakeRefused, match="401"):
        server.ws_connect("/logs/-/ws?s=ticker")
    assert health(server)["websockets"] == 0


def test_only_services_of_the_stack_can_be_streamed(logs_server, ticker):
    server = logs_server(ticker)
    session = server.session()
    with pytest.raises(HandshakeRefused, match="404"):
        server.ws_connect("/logs/-/ws?s=nope", session)
    with pytest.raises(HandshakeRefused, match="404"):
        server.ws_connect("/logs/-/ws?s=..%2Fetc", session)
    assert session.get(server.url + "/logs/nope", timeout=10).status_code == 404
    assert session.get(server.url + "/logs/-/download?s=nope", timeout=10).status_code == 404
    assert session.get(server.url + "/logs/ticker", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("args", "cli"),
    [
        ({"tail": "all", "timestamps": "0"}, []),
        ({"tail": "3", "timestamps": "1"}, ["--tail", "3", "--timestamps"]),
        ({"tail": "all", "timestamps": "1", "since": "1h"}, ["--timestamps", "--since", "1h"]),
    ],
)
def test_download_is_what_docker_logs_prints(logs_server, talker, args, cli):
    server = logs_server(talker)
    session = server.session()
    cid = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={talker.project}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    expected = subprocess.run(
        ["docker", "logs", *cli, cid], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=True
    ).stdout
    r = session.get(server.url + "/logs/-/download", params={"s": "talker", **args}, timeout=30, stream=True)
    assert r.status_code == 200
    assert r.headers["Content-Disposition"].startswith('attachment; filename="talker-')
    assert "Content-Length" not in r.headers  # streamed, not built in memory
    body = b"".join(r.iter_content(65536))
    assert body == expected
    assert len(body) > 102400 or "--tail" in cli


def test_download_of_merged_services_prefixes_each_line(logs_server, chorus):
    server = logs_server(chorus)
    r = server.session().get(server.url + "/logs/-/download", params={"tail": "all", "timestamps": "0"}, timeout=30)
    lines = r.content.decode().splitlines()
    truth = sorted(
        (ln.split(" ", 1)[0], ln.split(" ", 1)[1])
        for svc in ("alpha", "bravo", "charlie")
        for ln in container_logs(chorus, svc, "-t").splitlines()
    )
    assert [ln.split("  | ", 1)[1] for ln in lines] == [text for _stamp, text in truth]
    for ln in lines:
        name, text = ln.split("  | ", 1)
        assert name.strip() == text.split()[0]  # the service, as the page names it


def test_engine_going_away_is_reported_and_the_stream_resumes_without_duplicates(logs_server, ticker, engine_proxy):
    server = logs_server(ticker, DOCKER_HOST=engine_proxy.docker_host)
    reader = open_logs(server, server.session(), "s=ticker&tail=3")
    try:
        reader.until(lambda r: len(r.lines) >= 5, message="live ticks")
        engine_proxy.stop()
        reader.until(
            lambda r: any(e.get("state") == "engine-down" for e in r.events), timeout=15, message="engine-down status"
        )
        engine_proxy.start()
        reader.until(lambda r: any(e.get("kind") == "engine" for e in r.events), timeout=20, message="engine back note")
        seen = len(reader.lines)
        reader.until(lambda r: len(r.lines) >= seen + 3, timeout=15, message="ticks after the outage")
        numbers = [int(h.split()[1]) for h in reader.html()]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "lines lost or repeated"
    finally:
        reader.close()


def test_reconnect_with_resume_sends_only_newer_lines(logs_server, ticker):
    server = logs_server(ticker)
    session = server.session()
    first = open_logs(server, session, "s=ticker&tail=5")
    first.until(lambda r: len(r.lines) >= 7, message="ticks")
    first.close()
    last = first.lines[-1]
    second = open_logs(server, session, f"s=ticker&tail=5&resume={last[1]}")
    try:
        second.until(lambda r: len(r.lines) >= 3, message="ticks after resume")
    finally:
        second.close()
    assert int(second.lines[0][4].split()[1]) == int(last[4].split()[1]) + 1
    assert json.dumps(second.lines).count(last[1]) == 0


HOSTILE = """\
services:
  hostile:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "printf '\\\\033[%sm boom\\\\n' $(printf '9%.0s' $(seq 1 5000)); echo after-boom; exec sleep 3600"]
    stop_grace_period: 1s
  silent:
    image: {image}
    pull_policy: never
    command: ["sh", "-c", "echo unreadable; exec sleep 3600"]
    logging: {driver: none}
    stop_grace_period: 1s
"""


def test_a_hostile_line_or_an_unreadable_log_driver_does_not_break_the_view(logs_server, make_stack):
    proj = make_stack({"docker-compose.yml": HOSTILE}, name="hostile")
    proj.compose("up", "-d")
    wait_for(lambda: "after-boom" in container_logs(proj, "hostile"), timeout=20, message="hostile output")
    server = logs_server(proj)
    reader = open_logs(server, server.session(), "tail=all")
    try:
        reader.until(lambda r: any(line[4] == "after-boom" for line in r.lines), message="lines after the boom")
        reader.until(
            lambda r: any("silent" in (e.get("text") or "") for e in r.events),
            message="a note about the unreadable log",
        )
        reader.pump(2.0)
    finally:
        reader.close()
    notes = [e for e in reader.events if e.get("t") == "note"]
    assert len(notes) < 5, notes  # no retry storm of re-attach notices


def test_signing_out_closes_the_open_log_socket(logs_server, ticker):
    server = logs_server(ticker)
    session = server.session("viewer", "viewer")
    reader = open_logs(server, session, "s=ticker&tail=5")
    try:
        reader.until(lambda r: len(r.lines) >= 3, message="live ticks")
        assert session.post(server.url + "/logout", timeout=10).status_code in (200, 302)
        reader.until(
            lambda r: any(m.get("t") == "error" and "signed out" in m.get("text", "") for m in r.messages),
            timeout=15,
            message="the signed-out message",
        )
        reader.until(lambda r: r.closed, timeout=10, message="the socket to close")
    finally:
        reader.close()
