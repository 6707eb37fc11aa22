"""`maasflow serve`: the provisioning service and the MAAS webhook power target.

The in-process API others build on (tests, the demo)::

    from maasflow.serve import ServiceConfig, serve_service, ServiceThread

    async with serve_service(ServiceConfig(script=path), host="127.0.0.1", port=0) as svc:
        svc.url
    with ServiceThread(ServiceConfig(script=path)) as svc:
        svc.url

Names are imported on first use, so `maasflow power-config` (in this package too) does not pay
for FastAPI and uvicorn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maasflow.serve.app import ServiceConfig, build_app
    from maasflow.serve.server import RunningService, ServiceThread, serve_service

__all__ = ["RunningService", "ServiceConfig", "ServiceThread", "build_app", "serve_service"]

_HOMES = {
    "ServiceConfig": "maasflow.serve.app",
    "build_app": "maasflow.serve.app",
    "RunningService": "maasflow.serve.server",
    "ServiceThread": "maasflow.serve.server",
    "serve_service": "maasflow.serve.server",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'maasflow.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
