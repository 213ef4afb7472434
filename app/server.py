"""The process: load settings, build the app, serve it with waitress (and WebSockets) until SIGTERM."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time

from dotenv import load_dotenv
from waitress import create_server

from app import ROOT
from app import create_app
from app import wsbridge
from app.errors import SettingsError
from app.settings import from_env

log = logging.getLogger("stackpilot")
SHUTDOWN_GRACE = 3.0


def main() -> None:
    # Start-up makes ~50k objects that live as long as the process and almost no garbage (16 objects
    # in cycles, measured): the cyclic GC walking them again and again while they pile up was ~15 %
    # of start-up's CPU. Off until the server is built (app/__main__.py turns it off before the
    # first import), then on for what serving makes.
    gc.disable()
    logging.basicConfig(
        level=os.environ.get("STACKPILOT_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Our own .env (beside the app), never the managed stack's.
    load_dotenv(ROOT / ".env", override=False)
    try:
        settings = from_env()
        app = create_app({"SETTINGS": settings})
    except SettingsError as e:
        # One line a person can act on, before logging is even useful; no traceback.
        sys.stderr.write(f"stackpilot: {e.message}\n")
        sys.exit(2)

    server = create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        ident="stackpilot",
        channel_timeout=120,
        connection_limit=max(200, settings.threads * 2),
        clear_untrusted_proxy_headers=False,
    )
    wsbridge.install(server)
    _settle_after_startup()

    def stop(signum, frame):
        log.info("signal %s: closing %d WebSocket(s) and stopping", signum, len(wsbridge.OPEN_SOCKETS))
        wsbridge.OPEN_SOCKETS.close_all()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "Stackpilot %s serving on http://%s:%s (%d threads)",
        app.config["VERSION"],
        settings.host,
        settings.port,
        settings.threads,
    )
    try:
        server.run()
    finally:
        server.close()
        # Worker threads still streaming (a download being read) now write to closed sockets and
        # waitress would log each EBADF as a traceback: they are cut short on purpose, say it once.
        logging.getLogger("waitress").setLevel(logging.CRITICAL)
        log.info("stopped serving; streams still open are cut short")
        _run_shutdown_hooks(app.extensions.get("stackpilot.shutdown", []))
    # Worker threads are daemons: whatever is still running is cut short here.
    os._exit(0)


def _settle_after_startup() -> None:
    """Keep the GC off the objects start-up made (gc.freeze: no collection walks the app's modules
    and routes again; a full collection of them costs ~25 ms, for ~16 objects of garbage), turn it
    on for what serving makes, and give back to the OS the heap that imports and set-up freed
    (~1 MB of idle RSS, measured)."""
    gc.freeze()
    gc.enable()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        pass


def _run_shutdown_hooks(hooks: list) -> None:
    """Run the owners' stop hooks (Compose runs, stats sampler) side by side, bounded in time."""
    threads = [threading.Thread(target=hook, daemon=True) for hook in hooks]
    for t in threads:
        t.start()
    deadline = time.monotonic() + SHUTDOWN_GRACE
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
