"""Engines on other machines, over Docker's own transports.

- ``tcp://host:2376`` with TLS client certificates (the files ``ca.pem``, ``cert.pem``, ``key.pem``
  in one folder, exactly what ``DOCKER_CERT_PATH`` expects, so Compose gets the same folder).
- ``ssh://user@host[:port]``: the OpenSSH client runs ``docker system dial-stdio`` on the host, as
  the Docker CLI does (the SDK's ``use_ssh_client``). We run ssh ourselves over a socketpair rather
  than through the SDK's adapter: that adapter needs paramiko at import, spawns a new ssh per
  request (no pool) and reads without a timeout. Ours keeps a pool of ssh connections per engine,
  and every read has a timeout. Options (key, known_hosts, timeouts) come from one ssh_config per
  engine, which a tiny ``ssh`` wrapper also hands to Compose.

Each failure is put in words: an unreachable port, a certificate the engine refuses, a key the
SSH server refuses, ``docker`` missing on the remote PATH.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.engine import Engine
from app.engine import causes
from app.engine import sdk_error
from app.errors import InvalidInput

if TYPE_CHECKING:
    import docker

CONNECT_TIMEOUT = 3.0
# ssh's ConnectTimeout also covers the server's banner, which a busy host sends late: a little more.
SSH_CONNECT_TIMEOUT = 5.0
# Any API version both sides speak; the real one is negotiated right after the transport is mounted.
_PLACEHOLDER_API = "1.24"
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


class RemoteEngine(Engine):
    """An engine reached over the network: fails fast and backs off after a failure."""

    backoff_first = 2.0

    def __init__(self, url: str, folder: Path, *, engine_id: str, name: str, timeout: int = 10) -> None:
        super().__init__(url, timeout, engine_id=engine_id, name=name)
        self.folder = Path(folder)
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port
        self.user = parts.username or ""

    @property
    def endpoint(self) -> str:
        return self.base_url or ""

    def _negotiate(self, client: docker.DockerClient) -> docker.DockerClient:
        # requests lets REQUESTS_CA_BUNDLE (set on many hosts) replace the CA we give per session,
        # and would send engine traffic to HTTP(S)_PROXY: neither belongs on a Docker API connection.
        client.api.trust_env = False
        try:
            client.api._version = client.api._retrieve_server_version()
        except BaseException:
            client.close()
            raise
        return client


# -- tcp + TLS ----------------------------------------------------------------------------------
class TLSEngine(RemoteEngine):
    """``tcp://host:2376`` with mutual TLS: we check the engine's certificate against ca.pem and
    present cert.pem/key.pem, as ``docker --tlsverify`` does."""

    kind = "tcp"

    @property
    def tls_dir(self) -> Path:
        return self.folder / "tls"

    def _open(self) -> docker.DockerClient:
        import docker.tls

        import docker
        from app.engine.transports import FastConnectAdapter

        d = self.tls_dir
        tls = docker.tls.TLSConfig(
            client_cert=(str(d / "cert.pem"), str(d / "key.pem")), ca_cert=str(d / "ca.pem"), verify=True
        )
        client = docker.DockerClient(
            base_url=self.base_url, tls=tls, version=_PLACEHOLDER_API, timeout=self.timeout, max_pool_size=10
        )
        adapter = FastConnectAdapter(CONNECT_TIMEOUT, pool_connections=1, pool_maxsize=10)
        client.api.mount("https://", adapter)
        client.api._custom_adapter = adapter
        return self._negotiate(client)

    def compose_env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.base_url or "", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.tls_dir)}

    def describe(self, exc: BaseException) -> str:
        where = f"{self.host}:{self.port or 2376}"
        chain = list(causes(exc))
        texts = " | ".join(str(e) for e in chain)

        def has(*kinds: type | str) -> bool:
            """Any of the chain is one of kinds (a class, or "module.Class" of a library maybe not loaded)."""
            for kind in kinds:
                if isinstance(kind, str):
                    module, _, name = kind.rpartition(".")
                    if any(sdk_error(e, module, name) for e in chain):
                        return True
                elif any(isinstance(e, kind) for e in chain):
                    return True
            return False

        if has(ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in texts:
            if "mismatch" in texts or "not valid for" in texts:
                return (
                    f"the engine's certificate is not made out for {self.host!r} "
                    "(its subjectAltName must list this name or address)"
                )
            if "expired" in texts:
                return "the engine's certificate has expired"
            return (
                "the engine's certificate is not signed by the CA you gave (ca.pem): "
                "wrong CA, or not the engine you meant"
            )
        if any(m in texts for m in ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "certificate unknown")):
            return (
                "the engine refused our client certificate (cert.pem is not signed by the CA the "
                "engine trusts, or was not sent)"
            )
        if "WRONG_VERSION_NUMBER" in texts or "record layer failure" in texts:
            return f"{where} does not speak TLS (a plain-HTTP Docker port, or not Docker at all)"
        if has(ConnectionRefusedError):
            return f"nothing accepts connections at {where} (engine stopped, or another port?)"
        if has(socket.gaierror):
            return f"the host name {self.host!r} does not resolve"
        if has("urllib3.exceptions.ReadTimeoutError"):
            return f"the engine at {where} accepted the connection but did not answer in time"
        if has("urllib3.exceptions.ConnectTimeoutError", TimeoutError):
            return f"{where} did not answer within {CONNECT_TIMEOUT:.0f} s (host down, or a firewall drops it)"
        if has(ConnectionResetError, BrokenPipeError, ssl.SSLEOFError) or "EOF occurred" in texts:
            return (
                f"{where} closed the connection during the TLS handshake: most likely the engine refused our "
                "client certificate (cert.pem is not signed by the CA the engine trusts)"
            )
        for e in chain:
            if isinstance(e, OSError) and e.errno and e.strerror:
                return f"{where}: {e.strerror.lower()}"
        return super().describe(exc)


# -- ssh ------------------------------------------------------------------------------------------
_SSH_ERRORS = (
    (
        re.compile(r"Permission denied \(publickey"),
        "the SSH server refused our key for {user}: add the public "
        "key shown on the Engines page to {user}'s ~/.ssh/authorized_keys on {host}",
    ),
    (re.compile(r"Connection refused"), "nothing accepts SSH connections at {host}:{port}"),
    (re.compile(r"timed out|Connection timed out"), "{host}:{port} did not answer SSH within {timeout} s"),
    (re.compile(r"Could not resolve hostname|Name or service not known"), "the host name {host!r} does not resolve"),
    (
        re.compile(r"IDENTIFICATION HAS CHANGED|Host key verification failed"),
        "{host}'s SSH host key is not the one we saw first (a reinstalled host, or someone in between): "
        "remove the engine and add it again if the change is expected",
    ),
    (
        re.compile(r"docker: (command )?not found|\"docker\": executable file not found"),
        "`docker` is not on {user}'s PATH on {host}: Docker's SSH transport runs `docker system dial-stdio` there",
    ),
    (
        re.compile(r"permission denied while trying to connect to the Docker daemon"),
        "{user} may not use Docker on {host}: add them to the docker group there",
    ),
    (
        re.compile(
            r"Cannot connect to the Docker daemon|Is the docker daemon running|raw stream connection|"
            r"dial unix .*(no such file|connection refused)",
            re.I | re.S,
        ),
        "SSH works, but Docker is not running on {host} (the docker CLI there cannot reach its engine)",
    ),
)


class SSHEngine(RemoteEngine):
    """``ssh://user@host[:port]``: the Docker CLI's SSH transport, with our own key and known_hosts."""

    kind = "ssh"

    def __init__(self, url: str, folder: Path, *, engine_id: str, name: str, identity: Path, timeout: int = 10) -> None:
        super().__init__(url, folder, engine_id=engine_id, name=name, timeout=timeout)
        self.identity = Path(identity)
        self._ssh_error = ("", 0.0)
        self._err_lock = threading.Lock()

    @property
    def ssh_config(self) -> Path:
        return self.folder / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def wrapper_dir(self) -> Path:
        return self.folder / "bin"

    def write_files(self) -> None:
        """ssh_config (our key, known_hosts, batch mode, short timeouts) and the `ssh` wrapper that
        hands it to the Docker CLI inside Compose."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = "\n".join(
            [
                "Host *",
                f"  IdentityFile {_quote_ssh(str(self.identity))}",
                "  IdentitiesOnly yes",
                f"  UserKnownHostsFile {_quote_ssh(str(self.known_hosts))}",
                "  StrictHostKeyChecking accept-new",
                "  BatchMode yes",
                f"  ConnectTimeout {SSH_CONNECT_TIMEOUT:.0f}",
                "  ServerAliveInterval 5",
                "  ServerAliveCountMax 2",
                "  LogLevel ERROR",
                "",
            ]
        )
        _write_private(self.ssh_config, config)
        real = shutil.which("ssh") or "/usr/bin/ssh"
        self.wrapper_dir.mkdir(exist_ok=True, mode=0o700)
        wrapper = self.wrapper_dir / "ssh"
        _write_private(wrapper, f'#!/bin/sh\nexec {shlex.quote(real)} -F {shlex.quote(str(self.ssh_config))} "$@"\n')
        os.chmod(wrapper, 0o700)

    def argv(self, *command: str) -> list[str]:
        """ssh arguments reaching the host with our options, running `command` there."""
        args = [shutil.which("ssh") or "ssh", "-F", str(self.ssh_config), "-T"]
        if self.user:
            args += ["-l", self.user]
        if self.port:
            args += ["-p", str(self.port)]
        return [*args, "--", self.host, *(command or ("docker", "system", "dial-stdio"))]

    def _remember_error(self, text: str) -> None:
        with self._err_lock:
            self._ssh_error = (text, time.monotonic())

    def _open(self) -> docker.DockerClient:
        import docker
        from app.engine.transports import SSHAdapter

        self.write_files()
        client = docker.DockerClient(
            base_url="unix:///nonexistent/ssh-engine.sock", version=_PLACEHOLDER_API, timeout=self.timeout
        )
        adapter = SSHAdapter(self.argv(), self.timeout, self._remember_error)
        client.api.mount("http+docker://", adapter)
        client.api._custom_adapter = adapter
        return self._negotiate(client)

    def compose_env(self) -> dict[str, str]:
        self.write_files()
        return {
            "DOCKER_HOST": self.base_url or "",
            "PATH": f"{self.wrapper_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        }

    def ssh_words(self, stderr: str) -> str:
        """ssh's (or the remote docker's) complaint in words."""
        fields = {
            "user": self.user or "the SSH user",
            "host": self.host,
            "port": self.port or 22,
            "timeout": f"{SSH_CONNECT_TIMEOUT:.0f}",
        }
        for pattern, words in _SSH_ERRORS:
            if pattern.search(stderr):
                return words.format(**fields)
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("Warning:")]
        return f"ssh to {self.host} failed: {lines[-1][:300]}" if lines else f"ssh to {self.host} failed"

    def describe(self, exc: BaseException) -> str:
        with self._err_lock:
            text, at = self._ssh_error
        if text and time.monotonic() - at < 30:
            return self.ssh_words(text)
        for e in causes(exc):
            if isinstance(e, TimeoutError) or sdk_error(e, "urllib3.exceptions", "ReadTimeoutError"):
                return f"the engine behind {self.host} did not answer within {self.timeout} s over SSH"
            if isinstance(e, FileNotFoundError) and "ssh" in str(e):
                return "the OpenSSH client (`ssh`) is not installed here"
        if any(
            isinstance(e, ConnectionError) or sdk_error(e, "urllib3.exceptions", "ProtocolError") for e in causes(exc)
        ):
            return f"the SSH connection to {self.host} closed before Docker answered"
        return super().describe(exc)

    def preflight(self) -> tuple[bool, str]:
        """Run `docker version` over ssh once, without the HTTP layer: the clearest words for what
        fails (key, host key, PATH, permission), used by the admin's check."""
        self.write_files()
        try:
            done = subprocess.run(
                self.argv("docker", "version", "--format", "{{.Server.Version}}"),
                capture_output=True,
                text=True,
                timeout=SSH_CONNECT_TIMEOUT + 10,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            return False, "the OpenSSH client (`ssh`) is not installed here"
        except subprocess.TimeoutExpired:
            return False, f"ssh to {self.host} did not finish within {SSH_CONNECT_TIMEOUT + 10:.0f} s"
        if done.returncode == 0:
            return True, done.stdout.strip()
        return False, self.ssh_words(done.stderr + done.stdout)

    def host_key(self) -> str:
        """The fingerprint of the host key we trust for this engine ("" before the first connection)."""
        if not self.known_hosts.is_file():
            return ""
        done = subprocess.run(["ssh-keygen", "-l", "-f", str(self.known_hosts)], capture_output=True, text=True)
        lines = done.stdout.split()
        return " ".join(lines[:2] + lines[-1:]) if done.returncode == 0 and lines else ""


def _quote_ssh(value: str) -> str:
    return f'"{value}"' if " " in value else value


def _write_private(path: Path, text: str | bytes) -> None:
    """Write a file readable by us only, atomically (a key or certificate is never half-written)."""
    data = text.encode() if isinstance(text, str) else text
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# -- the material an admin gives us -------------------------------------------------------------
def store_tls_files(folder: Path, ca: str, cert: str, key: str) -> None:
    """Check the three PEMs offline (each parses; the key belongs to the certificate) and keep them
    as ca.pem/cert.pem/key.pem, mode 0600; InvalidInput says which one is wrong."""
    checks = {
        "ca": ("CA certificate", ca, "CERTIFICATE"),
        "cert": ("client certificate", cert, "CERTIFICATE"),
        "key": ("client key", key, "PRIVATE KEY"),
    }
    for field, (label, text, marker) in checks.items():
        if "-----BEGIN" not in text or marker not in text:
            raise InvalidInput(f"The {label} is not a PEM {marker.lower()} (-----BEGIN {marker}-----).", detail=field)
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=".tls-", dir=folder.parent))
    try:
        for name, text in zip(TLS_FILES, (ca, cert, key), strict=True):
            _write_private(tmp / name, text.strip() + "\n")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_verify_locations(cafile=str(tmp / "ca.pem"))
        except ssl.SSLError:
            raise InvalidInput("The CA certificate does not parse as a PEM certificate.", detail="ca") from None
        try:
            ctx.load_cert_chain(str(tmp / "cert.pem"), str(tmp / "key.pem"))
        except ssl.SSLError as e:
            if "KEY_VALUES_MISMATCH" in str(e) or "key values mismatch" in str(e):
                raise InvalidInput("The client key does not belong to the client certificate.", detail="key") from None
            raise InvalidInput(
                "The client certificate or key does not parse (or the key has a passphrase).", detail="cert"
            ) from None
        target = folder / "tls"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.exists():
            shutil.rmtree(target)
        os.chmod(tmp, 0o700)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def store_ssh_key(folder: Path, key: str) -> Path:
    """Keep a pasted OpenSSH private key (0600) after checking it opens without a passphrase."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / "id_key"
    _write_private(path, key.strip().replace("\r\n", "\n") + "\n")
    try:
        done = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(path)], capture_output=True, text=True)
    except FileNotFoundError:
        path.unlink(missing_ok=True)
        raise SSHUnavailable(NO_SSH, detail="ssh_key") from None
    if done.returncode != 0:
        path.unlink(missing_ok=True)
        raise InvalidInput(
            "The SSH key is not an OpenSSH private key, or it needs a passphrase (Stackpilot cannot type one).",
            detail="ssh_key",
        )
    return path


def own_key_path(data_dir: Path) -> Path:
    """Where Stackpilot's own SSH key lives (no side effect: loading engines must not need ssh-keygen)."""
    return Path(data_dir) / "ssh" / "id_ed25519"


def own_ssh_key(data_dir: Path) -> tuple[Path, str]:
    """Stackpilot's own SSH key (made once, ed25519) and its public line for authorized_keys;
    SSHUnavailable when this machine has no OpenSSH client to make or use one."""
    key = own_key_path(data_dir)
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not key.is_file():
        try:
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stackpilot", "-f", str(key)],
                check=True,
                capture_output=True,
            )
        except (FileNotFoundError, subprocess.CalledProcessError):
            raise SSHUnavailable(NO_SSH) from None
        os.chmod(key, 0o600)
    return key, key.with_name("id_ed25519.pub").read_text().strip()


NO_SSH = "SSH engines need the OpenSSH client here (ssh, ssh-keygen: Debian's openssh-client), and it is missing."


class SSHUnavailable(InvalidInput):
    """This machine cannot speak SSH (no OpenSSH client)."""

    title = "No SSH client"
