"""exec.feed over the transports of a remote engine (engine 2: TCP+TLS, and our OpenSSH
`docker system dial-stdio`): every byte reaches the command's stdin, its input ends in-band (`\\q`)
with no half-close (on TLS the SDK's socket is the SSLSocket, whose shutdown() drops the TLS layer),
and its stderr and exit code come back readable."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from app.engine import exec as engine_exec
from app.engine.registry import NewEngine
from app.engine.registry import add_engine
from app.engine.registry import remove_engine
from app.engine.remote import own_ssh_key
from tests.conftest import PREFIX
from tests.support.engine2 import shared_engine2

pytestmark = pytest.mark.docker

# A stand-in client: keeps its input up to the `\q` line, then fails with two errors of its own, a
# moment apart (after a half-close of the SSLSocket, the second came back as raw TLS bytes).
CLIENT = [
    "sh",
    "-c",
    "awk '{ print } /^\\\\q$/ { exit }' > /tmp/got; echo 'ERROR:  one' >&2; sleep 1; echo 'ERROR:  two' >&2; exit 3",
]


@pytest.fixture(scope="module")
def engine2(busybox_image):
    try:
        return shared_engine2((busybox_image,))
    except RuntimeError as e:
        pytest.fail(f"engine 2 could not be started: {e}")


@pytest.mark.parametrize("transport", ["tls", "ssh"])
def test_a_dump_is_fed_over_a_remote_engine(app, engine2, busybox_image, transport):
    registry, store, data = (
        app.extensions["stackpilot.engines"],
        app.extensions["stackpilot.store"],
        app.config["SETTINGS"].data_dir,
    )
    if transport == "tls":
        c = engine2.certs
        form = {"url": engine2.tcp_url, "ca": c.text("ca.pem"), "cert": c.text("client-cert.pem")}
        new = NewEngine(name=f"feed {transport}", key=c.text("client-key.pem"), **form)
    else:
        engine2.authorize(own_ssh_key(data)[1])
        new = NewEngine(name=f"feed {transport}", url=engine2.ssh_url)
    engine = add_engine(registry, store, data, new)
    name = f"{PREFIX}-feed-{os.urandom(3).hex()}"
    started = engine2.docker("run", "-d", "--name", name, busybox_image, "sleep", "300")
    assert started.returncode == 0, started.stderr
    try:
        lines = b"".join(b"INSERT INTO t VALUES (%d, 'row %d');\n" % (i, i) for i in range(30000))
        chunks = [lines[i : i + 50000] for i in range(0, len(lines), 50000)]
        t0 = time.monotonic()
        fed = engine_exec.feed(engine, name, CLIENT, [*chunks, b"\\q\n"], stall=60)
        assert time.monotonic() - t0 < 20
        assert fed.exit_code == 3
        assert fed.stderr == b"ERROR:  one\nERROR:  two\n"  # not TLS records read as bytes
        got = engine2.docker("exec", name, "cat", "/tmp/got").stdout
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(lines + b"\\q\n").hexdigest()
    finally:
        engine2.docker("rm", "-f", name)
        remove_engine(registry, store, data, engine.id)
