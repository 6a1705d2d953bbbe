"""Settings: declared once, read from a TOML file, environment variables and flags.

Every setting is declared in ``SETTINGS`` (``queuey.settings``) with its type,
default and help; a test checks that each one is documented in ``docs/configuration.md``. The
``[application_keys]`` table is free-form (application name = list of keys);
``[applications.NAME]`` tables hold each application's limits, whose keys are
declared in ``APPLICATION_SETTINGS``. Precedence: command-line flags >
``QUEUEY_*`` environment variables > file > defaults. A bad configuration
raises :class:`ConfigError` whose message is one line, ``PATH: section.key:
problem``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from queuey.settings import APPLICATION_SETTINGS, DEFAULTS, SETTINGS, Setting

APP_NAME = re.compile(r"[A-Za-z0-9_]+")
HASHED_KEY = re.compile(r"sha256:[0-9a-fA-F]{64}")


class ConfigError(Exception):
    """A configuration problem; ``str()`` is the one line to print."""


# The declarations live in queuey.settings; they are re-exported here.

__all__ = [
    "APPLICATION_SETTINGS",
    "DEFAULTS",
    "SETTINGS",
    "ConfigError",
    "Setting",
    "Settings",
    "load",
    "parse",
]


@dataclass(frozen=True, slots=True)
class ApplicationLimits:
    """One ``[applications.NAME]`` table (defaults declared in ``APPLICATION_SETTINGS``)."""

    requests_per_second: float = 0.0
    burst: float = 0.0
    max_queues: int = 0


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved configuration of one Queuey server.

    Its fields are the declared settings (``SETTINGS``, where the defaults
    live) plus the application keys and the file's path.
    """

    host: str = DEFAULTS["host"]
    port: int = DEFAULTS["port"]
    workers: int = DEFAULTS["workers"]
    queue_cache_seconds: float = DEFAULTS["queue_cache_seconds"]
    queue_cache_size: int = DEFAULTS["queue_cache_size"]
    storage_url: str = DEFAULTS["storage_url"]
    storage_create_schema: bool = DEFAULTS["storage_create_schema"]
    storage_settle_weak: float = DEFAULTS["storage_settle_weak"]
    storage_settle_strong: float = DEFAULTS["storage_settle_strong"]
    storage_settle_very_strong: float = DEFAULTS["storage_settle_very_strong"]
    storage_purge_interval: float = DEFAULTS["storage_purge_interval"]
    storage_readers: int = DEFAULTS["storage_readers"]
    storage_busy_timeout: float = DEFAULTS["storage_busy_timeout"]
    storage_purge_batch: int = DEFAULTS["storage_purge_batch"]
    storage_reserve_bytes: int = DEFAULTS["storage_reserve_bytes"]
    cors_origins: tuple[str, ...] = DEFAULTS["cors_origins"]
    max_message_bytes: int = DEFAULTS["max_message_bytes"]
    max_request_bytes: int = DEFAULTS["max_request_bytes"]
    idempotency_window: int = DEFAULTS["idempotency_window"]
    max_in_flight: int = DEFAULTS["max_in_flight"]
    access_log: bool = DEFAULTS["access_log"]
    log_format: str = DEFAULTS["log_format"]
    read_timeout: float = DEFAULTS["read_timeout"]
    shutdown_seconds: int = DEFAULTS["shutdown_seconds"]
    trusted_proxies: tuple[str, ...] = DEFAULTS["trusted_proxies"]
    metrics_allow: tuple[str, ...] = DEFAULTS["metrics_allow"]
    anonymous_requests_per_second: float = DEFAULTS["anonymous_requests_per_second"]
    anonymous_burst: float = DEFAULTS["anonymous_burst"]
    applications: Mapping[str, ApplicationLimits] = field(
        default_factory=lambda: DEFAULTS["applications"]
    )
    application_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    path: str | None = None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _convert(setting: Setting, value: Any, where: str) -> Any:
    kind = setting.type
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: must be a list of strings")
        if setting.key in NETWORK_LISTS:
            for item in value:
                if network_problem(item):
                    raise ConfigError(f"{where}: {network_problem(item)}")
        return tuple(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: must be {kind.__name__}, not {type(value).__name__}")
    choices = CHOICES.get(setting.key)
    if choices is not None and value not in choices:
        raise ConfigError(f'{where}: "{value}" is not one of {", ".join(choices)}')
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number")
    problem = RANGES.get(setting.key)
    if problem is not None and isinstance(value, int):
        complaint = problem(value)
        if complaint:
            raise ConfigError(f"{where}: {complaint}")
    elif isinstance(value, float) and setting.key in POSITIVE and not value > 0:
        raise ConfigError(f"{where}: must be more than 0")
    elif isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{where}: must be at least 0")
    return value


def _shown(value: int) -> str:
    text = str(value)
    return text if len(text.lstrip("-")) <= 20 else f"{text[:21]}…"


def port_problem(value: int) -> str | None:
    """What is wrong with a TCP port to listen on (1..65535; 0, "any free port", is not one)."""
    return None if 1 <= value <= 65535 else f"{_shown(value)} is not a port (1..65535)"


def workers_problem(value: int) -> str | None:
    """What is wrong with a number of server processes (at least 1)."""
    return None if value >= 1 else f"{_shown(value)} is not a number of workers (at least 1)"


#: Settings whose integers have a range of their own (the others must not be negative).
def at_least_one(value: int) -> str | None:
    return None if value >= 1 else f"{_shown(value)} is less than minimum value 1"


#: Cassandra's longest TTL (20 years): the longest idempotency window a store can keep.
MAX_WINDOW = 630_720_000


def window_problem(value: int) -> str | None:
    """What is wrong with an idempotency window in seconds (1..20 years)."""
    if value > MAX_WINDOW:
        return f"{_shown(value)} is greater than maximum value {MAX_WINDOW}"
    return at_least_one(value)


def network_problem(value: str) -> str | None:
    """What is wrong with an IP address or a network in CIDR notation."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f'"{value[:60]}" is not an IP address or network'
    return None


#: Settings that list IP addresses or networks.
NETWORK_LISTS = frozenset({"trusted_proxies", "allow"})
#: Settings that take one of a few strings.
CHOICES: dict[str, tuple[str, ...]] = {"log_format": ("text", "json")}

RANGES: dict[str, Callable[[int], str | None]] = {
    "port": port_problem,
    "workers": workers_problem,
    "readers": at_least_one,
    "purge_batch": at_least_one,
    "queue_cache_size": at_least_one,
    "idempotency_window": window_problem,
    "max_in_flight": at_least_one,
    "shutdown_seconds": at_least_one,
}
#: Durations that must be more than 0 (the others may be 0).
POSITIVE = frozenset({"read_timeout"})
_INTEGER = re.compile(r"([+-]?)0*([0-9]+)")


def parse_integer(text: str) -> int | None:
    """ASCII digits, an optional sign and surrounding spaces; ``None`` for anything else."""
    match = _INTEGER.fullmatch(text.strip())
    if match is None:
        return None
    # Past 20 digits a value is only shown shortened, and int() refuses more than 4300.
    return int(match[1] + match[2][:100])


def _application_keys(path: str, table: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: application_keys: must be a table of app = [keys]")
    owners: dict[str, str] = {}
    keys: dict[str, tuple[str, ...]] = {}
    for app, value in table.items():
        where = f"{path}: application_keys.{app}"
        if not APP_NAME.fullmatch(app):
            raise ConfigError(f"{where}: application names are letters, digits and _")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(k, str) and k for k in value):
            raise ConfigError(f"{where}: must be a list of non-empty key strings")
        if not value:
            raise ConfigError(f"{where}: an application needs at least one key")
        for key in value:
            if key.startswith("sha256:") and not HASHED_KEY.fullmatch(key):
                raise ConfigError(f"{where}: a hashed key is sha256: and 64 hex digits")
            if key in owners:
                raise ConfigError(f"{where}: a key is also configured for {owners[key]}")
            owners[key] = app
        keys[app] = tuple(value)
    return keys


def _applications(path: str, table: Any) -> dict[str, ApplicationLimits]:
    """The ``[applications.NAME]`` tables; a burst under 1 would never let a request in."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: applications: must be a table of [applications.NAME] tables")
    by_key = {s.key: s for s in APPLICATION_SETTINGS}
    found: dict[str, ApplicationLimits] = {}
    for app, limits in table.items():
        if not isinstance(limits, dict):
            raise ConfigError(f"{path}: applications.{app}: must be a table")
        values: dict[str, Any] = {}
        for key, value in limits.items():
            where = f"{path}: applications.{app}.{key}"
            setting = by_key.get(key)
            if setting is None:
                raise ConfigError(f"{where}: unknown setting")
            values[key] = _convert(setting, value, where)
        burst = values.get("burst", 0.0)
        if 0 < burst < 1:
            raise ConfigError(f"{path}: applications.{app}.burst: must be 0 (the rate) or >= 1")
        found[app] = ApplicationLimits(**values)
    return found


def parse(path: str, document: Mapping[str, Any]) -> Settings:
    """Settings from a parsed TOML document (``path`` names it in errors)."""
    by_name = {(s.section, s.key): s for s in SETTINGS}
    sections = {s.section for s in SETTINGS}
    values: dict[str, Any] = {}
    app_keys: dict[str, tuple[str, ...]] = {}
    applications: dict[str, ApplicationLimits] = {}
    for section, table in document.items():
        if section == "application_keys":
            app_keys = _application_keys(path, table)
            continue
        if section == "applications":
            applications = _applications(path, table)
            continue
        if section not in sections:
            raise ConfigError(f"{path}: {section}: unknown section")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section}: must be a table")
        for key, value in table.items():
            setting = by_name.get((section, key))
            if setting is None:
                raise ConfigError(f"{path}: {section}.{key}: unknown setting")
            values[setting.attr] = _convert(setting, value, f"{path}: {section}.{key}")
    for app in applications:
        if app not in app_keys:
            raise ConfigError(f"{path}: applications.{app}: no key in application_keys")
    if 0 < values.get("anonymous_burst", 0.0) < 1:
        raise ConfigError(f"{path}: limits.anonymous_burst: must be 0 (the rate) or >= 1")
    return Settings(
        application_keys=app_keys, applications=MappingProxyType(applications), path=path, **values
    )


def load(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the file (``path``, else ``QUEUEY_CONFIG``, else ``./queuey.toml``), then overrides."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("QUEUEY_CONFIG") or "queuey.toml"
    try:
        with Path(path).open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such configuration file; create one with `queuey init {path}`"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    settings = parse(path, document)
    if not settings.application_keys:
        raise ConfigError(f"{path}: application_keys: no application is configured")
    changes: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.env and environ.get(setting.env):
            raw = environ[setting.env]
            if setting.type is int:
                number = parse_integer(raw)
                if number is None:
                    raise ConfigError(f"{setting.env}: must be an integer, not {raw[:40]!r}")
                changes[setting.attr] = _convert(setting, number, setting.env)
            else:
                changes[setting.attr] = raw
    by_attr = {s.attr: s for s in SETTINGS}
    for attr, value in (overrides or {}).items():
        if value is not None:
            flag = by_attr.get(attr)
            changes[attr] = _convert(flag, value, f"--{flag.key}") if flag else value
    return settings.replace(**changes)


# The declarations and the dataclass must name the same settings.
assert {f.name for f in dataclasses.fields(Settings)} == {*DEFAULTS, "application_keys", "path"}
