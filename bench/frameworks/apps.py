"""The apps the comparison serves, by name: granian factories and in-process builders.

granian imports ``bench.frameworks.apps:<name>`` with ``--factory``; each
factory reads its SQLite file and key from the environment
(``adapt.settings_from_environment``). Tests build the same apps over a store
they started themselves with :func:`build`.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.frameworks import bare as bare_app
from bench.frameworks import falcon_app, starlette_app
from bench.frameworks.adapt import Queuey, settings_from_environment
from queuey.api.app import create_app
from queuey.api.http import ASGIApp
from queuey.config import Settings
from queuey.storage.base import Storage

#: Name -> how the table calls it.
LABELS = {
    "bare": "bare ASGI handler",
    "queuey": "Queuey (own ASGI layer)",
    "falcon": "Falcon 4 adapter",
    "starlette": "Starlette adapter",
}


def build(name: str, settings: Settings, storage: Storage | None = None) -> ASGIApp:
    """App ``name`` for ``settings`` (over ``storage`` when given, else its own)."""
    builders: dict[str, Callable[[], ASGIApp]] = {
        "bare": lambda: bare_app.app,
        "queuey": lambda: create_app(settings, storage),
        "starlette": lambda: starlette_app.create(Queuey.of(settings, storage)),
        "falcon": lambda: falcon_app.create(Queuey.of(settings, storage)),
    }
    return builders[name]()


def bare() -> ASGIApp:
    return bare_app.app


def queuey() -> ASGIApp:
    return build("queuey", settings_from_environment())


def starlette() -> ASGIApp:
    return build("starlette", settings_from_environment())


def falcon() -> ASGIApp:
    return build("falcon", settings_from_environment())
