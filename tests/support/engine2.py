"""A second, real Docker engine for the tests, reached the way a remote engine is.

`Engine2.start()` runs another dockerd beside the shared one, with its own data-root, exec-root,
pidfile, unix socket, containerd namespace and address pool, no default bridge and no iptables
rules (so it cannot clash with the first engine), listening on a loopback port with mutual TLS
(a CA, server and client certificates made here with the openssl CLI). Debian's sshd runs on
another loopback port with its own sshd_config: root by key only, and each key's authorized_keys
line sets `environment="DOCKER_HOST=<engine 2's socket>"` (PermitUserEnvironment), so `ssh root@127.0.0.1 docker system dial-stdio` reaches engine 2 exactly as
Docker's SSH transport expects. The suite's busybox image is copied over with save | load.

`TCPForwarder` sits in front of engine 2's TLS port so a test can make it vanish (refused), or
wedge (accepts, never answers), and come back, without touching the daemon other tests share.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.engine import close_all

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
DOCKER = shutil.which("docker") or "/usr/bin/docker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.decode(errors='replace')[-800:]}")
    return done.stdout.decode(errors="replace")


@dataclass
class Certs:
    """PEM files: the CA engine 2 trusts, its server certificate, a good client pair, and wrong ones."""

    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    def text(self, name: str) -> str:
        return (self.dir / name).read_text()


def make_certs(folder: Path) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and for the
    failure tests: a second CA with a client certificate of its own (the engine does not trust it)."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")

    def ca(name: str) -> None:
        _run(
            "openssl",
            "req",
            "-x509",
            *ec,
            "-keyout",
            f"{name}-key.pem",
            "-out",
            f"{name}.pem",
            "-days",
            "3",
            "-subj",
            f"/CN=stackpilot test {name}",
            cwd=folder,
        )

    def signed(name: str, by: str, ext: str) -> None:
        (folder / f"{name}.ext").write_text(ext)
        _run(
            "openssl",
            "req",
            *ec,
            "-keyout",
            f"{name}-key.pem",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=folder,
        )
        _run(
            "openssl",
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            f"{by}.pem",
            "-CAkey",
            f"{by}-key.pem",
            "-CAcreateserial",
            "-out",
            f"{name}-cert.pem",
            "-days",
            "3",
            "-extfile",
            f"{name}.ext",
            cwd=folder,
        )

    ca("ca")
    ca("other-ca")
    signed("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    signed("client", "ca", "extendedKeyUsage=clientAuth\n")
    signed("stranger", "other-ca", "extendedKeyUsage=clientAuth\n")
    for pem in folder.glob("*.pem"):
        os.chmod(pem, 0o600)
    return Certs(folder)


class Engine2:
    """The second engine: start() once per session, stop() at the end."""

    def __init__(self) -> None:
        # Short root: containerd's socket under exec-root must fit a 108-byte unix path.
        self.root = Path(tempfile.mkdtemp(prefix="spe2-"))
        self.socket = self.root / "docker.sock"
        self.tls_port = free_port()
        self.ssh_port = free_port()
        self.certs: Certs | None = None
        self.dockerd: subprocess.Popen | None = None
        self.sshd: subprocess.Popen | None = None
        self.ssh_key = self.root / "ssh" / "id_test"

    # -- addresses a test gives Stackpilot -------------------------------------------------------
    @property
    def unix_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def tcp_url(self) -> str:
        return f"tcp://127.0.0.1:{self.tls_port}"

    @property
    def ssh_url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.ssh_port}"

    def docker(self, *args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """The docker CLI on engine 2's own socket (the harness's back door, not what we test)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        return subprocess.run(
            [DOCKER, "-H", self.unix_host, *args], input=stdin, capture_output=True, timeout=timeout, env=env
        )

    # -- life ---------------------------------------------------------------------------------
    def start(self, images: tuple[str, ...] = ()) -> Engine2:
        t0 = time.monotonic()
        self.certs = make_certs(self.root / "certs")
        c = self.certs
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - lives as long as dockerd
        self.dockerd = subprocess.Popen(
            [
                DOCKERD,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "-H",
                self.unix_host,
                "-H",
                f"tcp://127.0.0.1:{self.tls_port}",
                "--tlsverify",
                "--tlscacert",
                str(c.path("ca.pem")),
                "--tlscert",
                str(c.path("server-cert.pem")),
                "--tlskey",
                str(c.path("server-key.pem")),
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--default-address-pool",
                "base=10.213.0.0/16,size=24",
                "--containerd-namespace",
                "spengine2",
                "--containerd-plugins-namespace",
                "spengine2p",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._start_sshd()
        self._wait(
            lambda: self.docker("version", "--format", "{{.Server.Version}}", timeout=5).returncode == 0,
            20,
            "engine 2 (dockerd) did not answer",
            self.root / "dockerd.log",
        )
        for image in images:
            saved = subprocess.run([DOCKER, "save", image], capture_output=True, timeout=60, check=True).stdout
            loaded = self.docker("load", stdin=saved)
            if loaded.returncode != 0:
                raise RuntimeError(f"loading {image} into engine 2 failed: {loaded.stderr.decode()[-500:]}")
        self._wait(
            lambda: self.ssh("true").returncode == 0,
            10,
            "sshd did not let the test key in",
            self.root / "ssh" / "sshd.log",
        )
        self.started_in = time.monotonic() - t0
        return self

    def _start_sshd(self) -> None:
        folder = self.root / "ssh"
        folder.mkdir(mode=0o700)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_ed25519"))
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stackpilot-test", "-f", str(self.ssh_key))
        (folder / "authorized_keys").touch()
        self.authorize((folder / "id_test.pub").read_text())
        (folder / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.ssh_port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {folder / 'host_ed25519'}",
                    f"PidFile {folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PrintMotd no",
                    # The remote side's engine (what `docker system dial-stdio` over ssh connects to)
                    # comes with each key, authorized_keys environment="DOCKER_HOST=…" (authorize()),
                    # so a test key can also carry a broken PATH or a dead DOCKER_HOST.
                    "PermitUserEnvironment PATH,DOCKER_HOST",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        log = open(folder / "sshd.log", "ab")  # noqa: SIM115 - lives as long as sshd
        self.sshd = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(folder / "sshd_config")],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def authorize(self, public_key: str, environment: dict[str, str] | None = None) -> None:
        """Let another key in (Stackpilot's own), as an admin would in authorized_keys; with
        `environment`, that key's sessions get those variables (authorized_keys environment=)."""
        env = {"DOCKER_HOST": self.unix_host, **(environment or {})}
        options = ",".join(f'environment="{k}={v}"' for k, v in env.items())
        with open(self.root / "ssh" / "authorized_keys", "a") as f:
            f.write(f"{options} {public_key.strip()}\n")

    def ssh(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                str(self.ssh_key),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-p",
                str(self.ssh_port),
                "root@127.0.0.1",
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
        )

    def _wait(self, ok, timeout: float, what: str, log: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.2)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"{what} within {timeout:.0f}s; its log ends:\n{tail}")

    def kill(self) -> None:
        """SIGKILL the daemon (and its containerd): the engine dies as in a crash; sshd stays up."""
        if self.dockerd and self.dockerd.poll() is None:
            os.killpg(self.dockerd.pid, signal.SIGKILL)
            self.dockerd.wait()

    def stop(self) -> None:
        """Remove engine 2's containers, stop sshd and dockerd, delete everything it kept."""
        if self.dockerd and self.dockerd.poll() is None:
            ids = self.docker("ps", "-aq", timeout=20).stdout.split()
            if ids:
                self.docker("rm", "-f", *[i.decode() for i in ids], timeout=60)
        for proc in (self.sshd, self.dockerd):
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        subprocess.run(["umount", "-R", str(self.root / "exec")], capture_output=True)
        subprocess.run(["umount", "-R", str(self.root / "data")], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


class TCPForwarder:
    """A loopback TCP port in front of another: `stop()` refuses like a dead host's port,
    `wedge()` accepts connections and never answers (a hung engine), `start()` forwards again."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.mode = "off"
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self, mode: str = "forward") -> TCPForwarder:
        self.stop()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener, self.mode = listener, mode
        threading.Thread(target=self._accept, args=(listener, mode), daemon=True).start()
        return self

    def wedge(self) -> TCPForwarder:
        return self.start("wedge")

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        self.mode = "off"
        with self._lock:
            conns, self._conns = self._conns, set()
        close_all(listener, conns)

    def _accept(self, listener: socket.socket, mode: str) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(client)
            if mode == "wedge":
                continue  # hold it open, say nothing
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.add(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


_shared: Engine2 | None = None
_shared_lock = threading.Lock()


def shared_engine2(images: tuple[str, ...]) -> Engine2:
    """Engine 2, started once per test process whichever test area asks first; stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            e2 = Engine2().start(images=images)
            atexit.register(e2.stop)
            _shared = e2
        return _shared
