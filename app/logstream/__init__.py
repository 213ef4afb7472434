"""Live logs, engine-agnostic: decode, clean, filter, render, merge, batch and supervise streams.

Nothing here imports Flask or the Docker SDK. The engine side (app/engine/logs.py) hands over raw
log messages; the web side (app/web/logs.py) sends what a LogSession produces over a WebSocket.
"""
