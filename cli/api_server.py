"""`scanledger api`: uvicorn serving the API from one process, or from SCANLEDGER_API_PROCESSES processes
on one port (uvicorn's workers, a killed one replaced). Each process builds its app from the
environment (`api_app`, uvicorn's factory) and hears first when it must stop: its open event streams
end then, since uvicorn waits for every response in flight before it stops."""
from __future__ import annotations

import logging
import signal
import sys
import threading

import uvicorn

from services import logs
from services.settings import Settings


def serve(settings: Settings, host: str) -> None:
    # JSON logs: uvicorn's own loggers go through the root's JSON handler instead of its text one
    log_config = None if logs.log_format() == "json" else uvicorn.config.LOGGING_CONFIG
    uvicorn.run("cli.api_server:api_app", factory=True, workers=settings.api_processes, host=host,
                port=settings.port, log_level="warning", log_config=log_config)


def api_app():
    """One API process's app, built from the environment when uvicorn loads it."""
    from api.app import create_app
    from services.adapters.arrow_memory import keep_freed_pages

    if not logging.getLogger().handlers:  # a process uvicorn spawned: configured as the command's
        logs.configure(logging.INFO)
    keep_freed_pages()  # uploads are read into Arrow tables
    # The database threads release the GIL inside SQLite and must win it back from the event loop;
    # at Python's 5 ms switch interval, 20 concurrent readers queue behind each other's handoffs
    # (bench/compliance_scan.py: 420 -> 560 req/s, p50 31 -> 23 ms).
    sys.setswitchinterval(0.0005)
    app = create_app(Settings.from_env())
    _tell_first(app.state.stopping)
    return app


def _tell_first(stopping: threading.Event) -> None:
    """Set `stopping`, then do what uvicorn's own handler does, on SIGINT and SIGTERM. uvicorn installs
    its handlers before it loads the app (the factory runs in them), so they are there to chain."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        uvicorns = signal.getsignal(sig)

        def handler(signum, frame, uvicorns=uvicorns) -> None:
            stopping.set()
            if callable(uvicorns):
                uvicorns(signum, frame)

        signal.signal(sig, handler)
