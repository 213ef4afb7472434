"""Every Docker engine Stackpilot talks to, by id: the local one ("local") and those an admin adds.

One Engine (and so one connection pool) per endpoint, shared by every stack on it. Stacks name
their engine by id; the web context resolves it here per request. Added engines are rows of the
store's `engines` table; their certificates and keys are files under <data>/engines/<id>/ (0600).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from urllib.parse import urlsplit

from app.engine import Engine
from app.engine.remote import TLS_FILES
from app.engine.remote import SSHEngine
from app.engine.remote import TLSEngine
from app.engine.remote import own_key_path
from app.engine.remote import own_ssh_key
from app.engine.remote import store_ssh_key
from app.engine.remote import store_tls_files
from app.errors import InvalidInput
from app.errors import NotFound
from app.store import Store

LOCAL = "local"
_ID = re.compile(r"[^a-z0-9]+")


class EngineRegistry:
    """Engines by id. `get` is the one way a request reaches an engine."""

    def __init__(self, local: Engine) -> None:
        local.id = LOCAL
        self._engines: dict[str, Engine] = {LOCAL: local}
        self._lock = threading.Lock()

    @property
    def local(self) -> Engine:
        return self._engines[LOCAL]

    def get(self, engine_id: str | None) -> Engine:
        with self._lock:
            engine = self._engines.get(engine_id or LOCAL)
        if engine is None:
            raise NotFound(f"no engine named {engine_id!r}")
        return engine

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._engines)

    def all(self) -> list[Engine]:
        """Every engine, the local one first."""
        with self._lock:
            return list(self._engines.values())

    def add(self, engine: Engine) -> None:
        """Add or replace (closing the one it replaces) an engine by its id."""
        with self._lock:
            old = self._engines.get(engine.id)
            self._engines[engine.id] = engine
        if old is not None and old is not engine:
            old.close()

    def remove(self, engine_id: str) -> None:
        if engine_id == LOCAL:
            raise InvalidInput("The local engine cannot be removed.")
        with self._lock:
            engine = self._engines.pop(engine_id, None)
        if engine is not None:
            engine.close()

    def close(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
        for engine in engines:
            engine.close()


# -- engines an admin added ---------------------------------------------------------------------
@dataclass(frozen=True)
class EngineRecord:
    """One added engine as stored: url is ssh://user@host[:port] or tcp://host:port."""

    id: str
    name: str
    url: str
    options: dict = field(default_factory=dict)
    created_at: float = 0.0

    @property
    def kind(self) -> str:
        return urlsplit(self.url).scheme


def engines_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "engines"


def engine_folder(data_dir: Path, engine_id: str) -> Path:
    return engines_dir(data_dir) / engine_id


def slug(name: str) -> str:
    """An engine id from its name: lower-case letters, digits and dashes."""
    return _ID.sub("-", name.lower()).strip("-")[:40]


def parse_url(raw: str) -> str:
    """The admin's address as a Docker host URL, or InvalidInput saying what is wrong with it."""
    url = raw.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("ssh", "tcp"):
        raise InvalidInput(
            "Give ssh://user@host[:port] or tcp://host:2376 (other transports are not remote engines).", detail="url"
        )
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("The port must be a number from 1 to 65535.", detail="url") from None
    if not parts.hostname:
        raise InvalidInput("The address names no host.", detail="url")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.password:
        raise InvalidInput("Give only user, host and port: no path, no password (SSH uses a key).", detail="url")
    if parts.scheme == "tcp":
        if parts.username:
            raise InvalidInput("A tcp:// address has no user; remove the user@ part.", detail="url")
        return f"tcp://{parts.hostname}:{port or 2376}"
    user = f"{parts.username}@" if parts.username else ""
    return f"ssh://{user}{parts.hostname}{f':{port}' if port else ''}"


def build(record: EngineRecord, data_dir: Path) -> Engine:
    """The Engine for a stored record (no network)."""
    folder = engine_folder(data_dir, record.id)
    if record.kind == "tcp":
        return TLSEngine(record.url, folder, engine_id=record.id, name=record.name)
    if record.kind == "ssh":
        identity = folder / "id_key" if record.options.get("own_key") else own_key_path(data_dir)
        return SSHEngine(record.url, folder, engine_id=record.id, name=record.name, identity=identity)
    raise InvalidInput(f"unknown engine transport {record.kind!r}")


def saved(store: Store) -> list[EngineRecord]:
    with store.transaction() as conn:
        rows = conn.execute("SELECT id, name, url, options, created_at FROM engines ORDER BY name").fetchall()
    return [EngineRecord(r[0], r[1], r[2], json.loads(r[3] or "{}"), r[4]) for r in rows]


def save(store: Store, record: EngineRecord) -> EngineRecord:
    """Insert a new engine row; InvalidInput when its id or name is taken."""
    record = EngineRecord(record.id, record.name, record.url, record.options, record.created_at or time.time())
    with store.transaction() as conn:
        taken = conn.execute("SELECT 1 FROM engines WHERE id = ? OR name = ?", (record.id, record.name)).fetchone()
        if taken or record.id == LOCAL:
            raise InvalidInput(f"An engine named {record.name!r} exists already.", detail="name")
        conn.execute(
            "INSERT INTO engines (id, name, url, options, created_at) VALUES (?, ?, ?, ?, ?)",
            (record.id, record.name, record.url, json.dumps(record.options), record.created_at),
        )
    return record


def delete(store: Store, data_dir: Path, engine_id: str) -> None:
    """Forget an engine and the certificates/keys kept for it."""
    with store.transaction() as conn:
        conn.execute("DELETE FROM engines WHERE id = ?", (engine_id,))
    shutil.rmtree(engine_folder(data_dir, engine_id), ignore_errors=True)


def load_saved(registry: EngineRegistry, store: Store, data_dir: Path) -> None:
    """Put every stored engine into the registry (at start; no network: clients open lazily)."""
    for record in saved(store):
        registry.add(build(record, data_dir))


@dataclass(frozen=True)
class NewEngine:
    """What an admin typed to add an engine. TLS material comes pasted, or from a folder on this
    machine holding ca.pem, cert.pem and key.pem; an SSH key is pasted, or Stackpilot's own is used."""

    name: str
    url: str
    ca: str = ""
    cert: str = ""
    key: str = ""
    cert_folder: str = ""
    ssh_key: str = ""


def add_engine(registry: EngineRegistry, store: Store, data_dir: Path, new: NewEngine) -> Engine:
    """Check the input, keep its certificates/keys (0600 under the data dir), store the row and put
    the engine in the registry. Nothing is kept when any part is refused (InvalidInput says which)."""
    name = " ".join(new.name.split())
    if not name or len(name) > 60:
        raise InvalidInput("Give the engine a name of 1 to 60 characters.", detail="name")
    engine_id = slug(name)
    if not engine_id or engine_id == LOCAL:
        raise InvalidInput('Choose another name (letters or digits, and not "local").', detail="name")
    url = parse_url(new.url)
    if any(e.name.lower() == name.lower() or e.id == engine_id for e in registry.all()):
        raise InvalidInput(f"An engine named {name!r} exists already.", detail="name")
    folder = engine_folder(data_dir, engine_id)
    if folder.exists():
        shutil.rmtree(folder)  # left by an engine removed while we were down
    options: dict = {}
    try:
        if url.startswith("tcp://"):
            ca, cert, key = new.ca, new.cert, new.key
            if new.cert_folder.strip() and not (ca.strip() or cert.strip() or key.strip()):
                ca, cert, key = _read_cert_folder(Path(new.cert_folder.strip()).expanduser())
            if not (ca.strip() and cert.strip() and key.strip()):
                raise InvalidInput(
                    "A tcp:// engine needs TLS: paste the CA certificate, the client certificate "
                    "and the client key (or name a folder holding ca.pem, cert.pem, key.pem).",
                    detail="ca",
                )
            store_tls_files(folder, ca, cert, key)
        elif new.ssh_key.strip():
            store_ssh_key(folder, new.ssh_key)
            options["own_key"] = True
        else:
            own_ssh_key(data_dir)  # made now: SSHUnavailable in words when there is no OpenSSH client
        record = save(store, EngineRecord(engine_id, name, url, options))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    engine = build(record, data_dir)
    registry.add(engine)
    return engine


def remove_engine(registry: EngineRegistry, store: Store, data_dir: Path, engine_id: str) -> None:
    """Close the engine's connections and forget it with its certificates and keys."""
    if engine_id == LOCAL:
        raise InvalidInput("The local engine cannot be removed.")
    registry.get(engine_id)  # NotFound for an unknown id
    registry.remove(engine_id)
    delete(store, data_dir, engine_id)


def _read_cert_folder(folder: Path) -> tuple[str, str, str]:
    texts = []
    for name in TLS_FILES:
        try:
            texts.append((folder / name).read_text())
        except OSError as e:
            raise InvalidInput(f"Cannot read {folder / name}: {e.strerror or e}.", detail="cert_folder") from None
    return texts[0], texts[1], texts[2]
