"""Adding engines, without any engine: addresses, certificates and keys checked offline, rows kept
across a restart, and nothing half-kept when a part is refused."""

from __future__ import annotations

import io
import stat

import pytest

from app.engine.registry import NewEngine
from app.engine.registry import add_engine
from app.engine.registry import engine_folder
from app.engine.registry import parse_url
from app.engine.registry import remove_engine
from app.engine.registry import saved
from app.engine.remote import SSHEngine
from app.engine.remote import TLSEngine
from app.errors import InvalidInput
from tests.conftest import sign_in
from tests.support.engine2 import free_port
from tests.support.engine2 import make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def _parts(app):
    return (app.extensions["stackpilot.engines"], app.extensions["stackpilot.store"], app.config["SETTINGS"].data_dir)


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("ssh://me@nas.lan", "ssh://me@nas.lan"),
        (" ssh://root@10.0.0.5:2222 ", "ssh://root@10.0.0.5:2222"),
        ("tcp://nas.lan", "tcp://nas.lan:2376"),
        ("tcp://127.0.0.1:2376/", "tcp://127.0.0.1:2376"),
    ],
)
def test_engine_addresses_are_normalised(raw, url):
    assert parse_url(raw) == url


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("nas.lan", "ssh://user@host"),
        ("http://nas.lan:2375", "ssh://user@host"),
        ("unix:///var/run/docker.sock", "ssh://user@host"),
        ("tcp://nas.lan:99999", "port must be a number"),
        ("ssh://me:secret@nas.lan", "no password"),
        ("tcp://me@nas.lan:2376", "has no user"),
        ("ssh://", "names no host"),
    ],
)
def test_bad_engine_addresses_are_refused_in_words(raw, words):
    with pytest.raises(InvalidInput) as e:
        parse_url(raw)
    assert words in e.value.message


def test_added_tls_engine_survives_a_restart_with_private_files(app_factory, certs):
    app = app_factory()
    registry, store, data = _parts(app)
    engine = add_engine(
        registry,
        store,
        data,
        NewEngine(
            name="NAS box",
            url="tcp://127.0.0.1:2376",
            ca=certs.text("ca.pem"),
            cert=certs.text("client-cert.pem"),
            key=certs.text("client-key.pem"),
        ),
    )
    assert (engine.id, engine.kind) == ("nas-box", "tcp")
    tls = engine_folder(data, "nas-box") / "tls"
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert stat.S_IMODE((tls / name).stat().st_mode) == 0o600
    assert engine.compose_env() == {
        "DOCKER_HOST": "tcp://127.0.0.1:2376",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(tls),
    }

    again = app_factory().extensions["stackpilot.engines"]
    loaded = again.get("nas-box")
    assert isinstance(loaded, TLSEngine) and loaded.name == "NAS box" and loaded.endpoint == "tcp://127.0.0.1:2376"
    assert again.ids()[0] == "local"

    remove_engine(again, store, data, "nas-box")
    assert saved(store) == [] and not engine_folder(data, "nas-box").exists()


def test_ssh_engine_uses_our_own_key_and_hands_compose_a_wrapper(app_factory):
    registry, store, data = _parts(app_factory())
    engine = add_engine(registry, store, data, NewEngine(name="pi", url="ssh://pi@pi.lan:2222"))
    assert isinstance(engine, SSHEngine) and engine.identity == data / "ssh" / "id_ed25519"
    env = engine.compose_env()
    assert env["DOCKER_HOST"] == "ssh://pi@pi.lan:2222"
    wrapper = engine.wrapper_dir / "ssh"
    assert env["PATH"].startswith(f"{engine.wrapper_dir}:") and wrapper.is_file()
    assert str(engine.ssh_config) in wrapper.read_text()
    config = engine.ssh_config.read_text()
    assert "BatchMode yes" in config and "StrictHostKeyChecking accept-new" in config
    assert engine.argv()[-4:] == ["pi.lan", "docker", "system", "dial-stdio"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"key": "stranger-key.pem"}, "key", "does not belong to the client certificate"),
        ({"ca": "client-key.pem"}, "ca", "CA certificate is not a PEM certificate"),
        ({"cert": None}, "ca", "needs TLS"),
    ],
)
def test_wrong_tls_material_is_refused_and_nothing_is_kept(app_factory, certs, change, field, words):
    registry, store, data = _parts(app_factory())
    files = {"ca": "ca.pem", "cert": "client-cert.pem", "key": "client-key.pem", **change}
    texts = {k: certs.text(v) if v else "" for k, v in files.items()}
    with pytest.raises(InvalidInput) as e:
        add_engine(registry, store, data, NewEngine(name="nas", url="tcp://nas.lan:2376", **texts))
    assert words in e.value.message and e.value.detail == field
    assert saved(store) == [] and registry.ids() == ["local"] and not engine_folder(data, "nas").exists()


def test_pasted_ssh_key_must_open_without_passphrase(app_factory, certs):
    registry, store, data = _parts(app_factory())
    with pytest.raises(InvalidInput) as e:
        add_engine(
            registry,
            store,
            data,
            NewEngine(name="pi", url="ssh://pi@pi.lan", ssh_key=certs.text("client-key.pem").replace("EC ", "")[:80]),
        )
    assert "not an OpenSSH private key" in e.value.message
    assert saved(store) == [] and not engine_folder(data, "pi").exists()


def test_names_are_unique_and_local_is_kept(app_factory):
    registry, store, data = _parts(app_factory())
    add_engine(registry, store, data, NewEngine(name="pi", url="ssh://pi@pi.lan"))
    for name in ("PI", "local", "  "):
        with pytest.raises(InvalidInput):
            add_engine(registry, store, data, NewEngine(name=name, url="ssh://pi@pi.lan"))
    with pytest.raises(InvalidInput):
        remove_engine(registry, store, data, "local")


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_engines_page_is_for_admins_only(app, role):
    client = sign_in(app, app.test_client(), role)
    assert client.get("/engines/").status_code == 403
    assert client.post("/engines/", data={"name": "x", "url": "ssh://x@y"}).status_code == 403
    assert client.post("/engines/local/check").status_code == 403
    assert app.extensions["stackpilot.engines"].ids() == ["local"]


def test_certificates_by_upload_or_by_folder_and_every_change_audited(app, certs):
    """No engine answers at the address: the add keeps it and its check says why, at once."""
    client = sign_in(app, app.test_client())
    dead = f"tcp://127.0.0.1:{free_port()}"
    files = {
        f"{field}_file": (io.BytesIO(certs.path(name).read_bytes()), name)
        for field, name in (("ca", "ca.pem"), ("cert", "client-cert.pem"), ("key", "client-key.pem"))
    }
    r = client.post("/engines/", data={"name": "uploaded", "url": dead, **files}, content_type="multipart/form-data")
    assert r.status_code == 200
    assert "nothing accepts connections at 127.0.0.1" in r.text and "not tried" in r.text
    folder = certs.dir / "as-docker-wants"
    folder.mkdir(exist_ok=True)
    for src, dst in (("ca.pem", "ca.pem"), ("client-cert.pem", "cert.pem"), ("client-key.pem", "key.pem")):
        (folder / dst).write_bytes(certs.path(src).read_bytes())
    assert (
        client.post("/engines/", data={"name": "from folder", "url": dead, "cert_folder": str(folder)}).status_code
        == 200
    )
    missing = client.post("/engines/", data={"name": "nope", "url": dead, "cert_folder": str(folder / "nothing")})
    assert missing.status_code == 422 and "Cannot read" in missing.text and 'value="nope"' in missing.text
    assert client.post("/engines/uploaded/remove").status_code == 200
    assert app.extensions["stackpilot.engines"].ids() == ["local", "from-folder"]
    events = [(e.action, e.target, e.result) for e in app.extensions["stackpilot.store"].audit_events()]
    assert ("engine.add", "uploaded", "ok") in events and ("engine.add", "from-folder", "ok") in events
    assert ("engine.add", "nope", "refused") in events and ("engine.remove", "uploaded", "ok") in events


def test_without_an_openssh_client_ssh_engines_are_refused_in_words(app, monkeypatch, tmp_path):
    """Stackpilot's image may lack ssh: the page still opens and says what is missing."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no ssh, no ssh-keygen on this "machine"
    client = sign_in(app, app.test_client())
    page = client.get("/engines/")
    assert page.status_code == 200 and "SSH engines need the OpenSSH client here" in page.text
    r = client.post("/engines/", data={"name": "pi", "url": "ssh://pi@pi.lan"})
    assert r.status_code == 422 and "SSH engines need the OpenSSH client here" in r.text
    assert app.extensions["stackpilot.engines"].ids() == ["local"]
