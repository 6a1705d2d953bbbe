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

import contextlib
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

from queuey.settings import APPLICATION_SETTINGS, DEFAULTS, ISSUER_SETTINGS, SETTINGS, Setting

APP_NAME = re.compile(r"[A-Za-z0-9_]+")
HASHED_KEY = re.compile(r"sha256:[0-9a-fA-F]{64}")


class ConfigError(Exception):
    """A configuration problem; ``str()`` is the one line to print."""


# The declarations live in queuey.settings; they are re-exported here.

__all__ = [
    "APPLICATION_SETTINGS",
    "DEFAULTS",
    "ISSUER_SETTINGS",
    "SETTINGS",
    "ConfigError",
    "IssuerSettings",
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
class IssuerSettings:
    """One ``[[auth.issuers]]`` table (SPEC §8): exactly one of ``jwks_url`` and ``jwks_file``.

    ``jwks_file`` is resolved against the configuration file's folder.
    """

    issuer: str
    audience: tuple[str, ...]
    jwks_url: str | None = None
    jwks_file: str | None = None
    algorithms: tuple[str, ...] = ISSUER_SETTINGS[-1].default


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
    stream_heartbeat: float = DEFAULTS["stream_heartbeat"]
    stream_max_seconds: float = DEFAULTS["stream_max_seconds"]
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
    token_secret: tuple[str, ...] = DEFAULTS["token_secret"]
    issuers: tuple[IssuerSettings, ...] = DEFAULTS["issuers"]
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


#: Signature algorithms an issuer may use: asymmetric ones only (never none or HMAC).
ISSUER_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "ES256K", "EdDSA",
)  # fmt: skip


def _strings(value: Any) -> list[str] | None:
    """A string or a list of strings as a list; None for anything else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _jwks_url_problem(url: str) -> str | None:
    """https, or http to a loopback host only (SPEC §8)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return f'"{url[:80]}" is not a URL'
    if not host:
        return f'"{url[:80]}" is not a URL with a host'
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        loopback = host == "localhost"
        with contextlib.suppress(ValueError):
            loopback = loopback or ipaddress.ip_address(host).is_loopback
        if loopback:
            return None
        return "must be https (http only to a loopback host: localhost, 127.0.0.0/8, ::1)"
    return f"must be https, not {parts.scheme or 'a relative URL'}"


def _issuer(path: str, where: str, table: Any) -> IssuerSettings:
    """One ``[[auth.issuers]]`` table, checked (``where`` names it: ``auth.issuers[0]``)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {where}: must be a table ([[auth.issuers]])")
    known = {s.key for s in ISSUER_SETTINGS}
    for key in table:
        if key not in known:
            raise ConfigError(f"{path}: {where}.{key}: unknown setting")
    issuer = table.get("issuer")
    if not isinstance(issuer, str) or not issuer.strip():
        raise ConfigError(f"{path}: {where}.issuer: Required (the tokens' iss)")
    audience = _strings(table.get("audience"))
    if "audience" not in table:
        raise ConfigError(f"{path}: {where}.audience: Required (a string or a list)")
    if audience is None:
        raise ConfigError(f"{path}: {where}.audience: must be a string or a list of strings")
    if not audience or not all(a.strip() for a in audience):
        raise ConfigError(f"{path}: {where}.audience: must not be empty")
    url, file = table.get("jwks_url"), table.get("jwks_file")
    if url is not None and file is not None:
        raise ConfigError(f"{path}: {where}: both jwks_url and jwks_file; give one")
    if url is None and file is None:
        raise ConfigError(f"{path}: {where}: neither jwks_url nor jwks_file; give one")
    for key, value in (("jwks_url", url), ("jwks_file", file)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{path}: {where}.{key}: must be a non-empty string")
    if isinstance(url, str):
        problem = _jwks_url_problem(url)
        if problem:
            raise ConfigError(f"{path}: {where}.jwks_url: {problem}")
    if isinstance(file, str):
        file = str(Path(path).resolve().parent / file)  # relative to the configuration file
    algorithms = _strings(table.get("algorithms", list(ISSUER_SETTINGS[-1].default)))
    if algorithms is None:
        raise ConfigError(f"{path}: {where}.algorithms: must be a string or a list of strings")
    if not algorithms:
        raise ConfigError(f"{path}: {where}.algorithms: must not be empty")
    for name in algorithms:
        if name.lower() == "none" or name.upper().startswith("HS"):
            raise ConfigError(
                f'{path}: {where}.algorithms: "{name[:20]}" is never accepted from an issuer'
                " (none and HMAC are not)"
            )
        if name not in ISSUER_ALGORITHMS:
            raise ConfigError(
                f'{path}: {where}.algorithms: "{name[:20]}" is not one of'
                f" {', '.join(ISSUER_ALGORITHMS)}"
            )
    return IssuerSettings(
        issuer=issuer,
        audience=tuple(audience),
        jwks_url=url,
        jwks_file=file,
        algorithms=tuple(dict.fromkeys(algorithms)),
    )


def _auth(path: str, table: Any) -> dict[str, Any]:
    """The ``[auth]`` table: ``token_secret`` and the ``[[auth.issuers]]`` tables."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: auth: must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "token_secret":
            secrets = _strings(value)
            if secrets is None:
                raise ConfigError(
                    f"{path}: auth.token_secret: must be a string or a list of strings"
                )
            if not secrets or not all(secrets):
                raise ConfigError(f"{path}: auth.token_secret: must not be empty")
            values["token_secret"] = tuple(secrets)
        elif key == "issuers":
            if not isinstance(value, list):
                raise ConfigError(f"{path}: auth.issuers: must be [[auth.issuers]] tables")
            issuers = [_issuer(path, f"auth.issuers[{i}]", t) for i, t in enumerate(value)]
            seen: set[str] = set()
            for i, found in enumerate(issuers):
                if found.issuer in seen:
                    raise ConfigError(
                        f"{path}: auth.issuers[{i}].issuer: {found.issuer[:80]!r} is configured"
                        " twice"
                    )
                seen.add(found.issuer)
            values["issuers"] = tuple(issuers)
        else:
            raise ConfigError(f"{path}: auth.{key}: unknown setting")
    return values


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
        if section == "auth":
            values.update(_auth(path, table))
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
            elif setting.type is list:  # QUEUEY_TOKEN_SECRET: one secret
                changes[setting.attr] = (raw,)
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
