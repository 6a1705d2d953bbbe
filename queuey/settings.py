"""The declared settings: each one once, with its section, key, type, default and help.

``queuey.config`` reads them from a TOML file, the environment and flags; a
test checks that each one is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class Setting:
    section: str
    key: str
    type: type
    default: Any
    help: str
    env: str | None = None

    @property
    def attr(self) -> str:
        if self.key == "NAME":  # a table per application: [applications.NAME]
            return self.section
        prefixed = self.section in ("storage", "cors", "metrics")
        return f"{self.section}_{self.key}" if prefixed else self.key


SETTINGS: tuple[Setting, ...] = (
    Setting("server", "host", str, "127.0.0.1", "Address to listen on.", "QUEUEY_HOST"),
    Setting("server", "port", int, 5000, "TCP port to listen on.", "QUEUEY_PORT"),
    Setting("server", "workers", int, 1, "Server processes (granian workers)."),
    Setting(
        "storage",
        "url",
        str,
        "sqlite:///queuey.db",
        "Where messages live: sqlite:///relative/path, sqlite:////absolute/path, "
        "or cassandra://HOST[,HOST...][:PORT]/KEYSPACE?replication=N[&dc=NAME].",
        "QUEUEY_STORAGE_URL",
    ),
    Setting("storage", "create_schema", bool, True, "Create the schema at start (Cassandra)."),
    Setting(
        "storage", "settle_weak", float, 1.0, "Settle delay of weak queues, seconds (Cassandra)."
    ),
    Setting(
        "storage",
        "settle_strong",
        float,
        5.0,
        "Settle delay of strong queues, seconds (Cassandra).",
    ),
    Setting(
        "storage",
        "settle_very_strong",
        float,
        600.0,
        "Settle delay of very_strong queues, seconds (Cassandra).",
    ),
    Setting(
        "storage",
        "purge_interval",
        float,
        30.0,
        "Seconds between background purges of expired and deleted messages (SQLite).",
    ),
    Setting("storage", "readers", int, 4, "Read connections (threads) of the SQLite read pool."),
    Setting(
        "storage",
        "busy_timeout",
        float,
        10.0,
        "Seconds a SQLite write waits for another process's lock before a 503.",
    ),
    Setting(
        "storage",
        "purge_batch",
        int,
        1000,
        "Rows one purge step deletes (SQLite); each step is its own write between requests.",
    ),
    Setting(
        "storage",
        "reserve_bytes",
        int,
        8 * 1024 * 1024,
        "Bytes of disk held beside the SQLite file, freed when the disk fills so deletes commit.",
    ),
    Setting(
        "server",
        "queue_cache_seconds",
        float,
        2.0,
        "How long a queue read for a write may be reused for the next writes (0: never).",
    ),
    Setting("server", "queue_cache_size", int, 10_000, "Queues that cache holds, per process."),
    Setting("server", "access_log", bool, True, "One line per request on standard error."),
    Setting("server", "log_format", str, "text", 'Access log lines as "text" or "json".'),
    Setting(
        "server",
        "read_timeout",
        float,
        30.0,
        "Seconds a request's headers or body may stop arriving (then 408, connection closed).",
    ),
    Setting(
        "server",
        "shutdown_seconds",
        int,
        10,
        "Seconds requests under way may take to finish after SIGTERM; then workers are killed.",
    ),
    Setting(
        "server",
        "stream_heartbeat",
        float,
        15.0,
        "Seconds of silence after which an event stream sends a comment (0: never).",
    ),
    Setting(
        "server",
        "stream_max_seconds",
        float,
        3600.0,
        "Seconds after which the server ends an event stream cleanly (0: never).",
    ),
    Setting(
        "server",
        "trusted_proxies",
        list,
        (),
        "Addresses or networks (CIDR) of proxies whose X-Forwarded-For names the client.",
    ),
    Setting(
        "metrics",
        "allow",
        list,
        ("127.0.0.0/8", "::1"),
        "Client addresses or networks (CIDR) that may read /__metrics__.",
    ),
    Setting("cors", "origins", list, (), 'Origins allowed cross-origin access; "*" for any.'),
    Setting("limits", "max_message_bytes", int, 262144, "Largest message body, UTF-8 bytes."),
    Setting("limits", "max_request_bytes", int, 8388608, "Largest request body, bytes."),
    Setting(
        "limits",
        "idempotency_window",
        int,
        86400,
        "Seconds a message's idempotency key is remembered, counted from its first post.",
    ),
    Setting(
        "limits",
        "max_in_flight",
        int,
        10_000,
        "Messages of one consumer group partition leased at once, at most.",
    ),
    Setting(
        "limits",
        "anonymous_requests_per_second",
        float,
        0.0,
        "Rate of requests without credentials, per client address (0: no limit).",
    ),
    Setting(
        "limits",
        "anonymous_burst",
        float,
        0.0,
        "Burst of requests without credentials, per client address (0: the rate, at least 1).",
    ),
    Setting(
        "auth",
        "token_secret",
        list,
        (),
        "Secret(s) signing scoped tokens: a string, or a list whose first entry signs and all "
        "verify. None: no tokens.",
        "QUEUEY_TOKEN_SECRET",
    ),
    Setting(
        "auth",
        "issuers",
        list,
        (),
        "OpenID Connect issuers whose people are trusted: [[auth.issuers]] tables, the keys of "
        "ISSUER_SETTINGS.",
    ),
    Setting(
        "applications",
        "NAME",
        dict,
        MappingProxyType({}),
        "Limits of application NAME: the keys of APPLICATION_SETTINGS.",
    ),
)

#: The keys of an ``[applications.NAME]`` table (``section`` is the table's name).
APPLICATION_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "applications.NAME",
        "requests_per_second",
        float,
        0.0,
        "Requests per second of this application, per process (0: no limit).",
    ),
    Setting(
        "applications.NAME",
        "burst",
        float,
        0.0,
        "Requests this application may make at once (0: the rate, at least 1).",
    ),
    Setting(
        "applications.NAME", "max_queues", int, 0, "Queues this application may have (0: no limit)."
    ),
)

#: The keys of an ``[[auth.issuers]]`` table (SPEC §8); ``issuer``, ``audience`` and one
#: of ``jwks_url`` and ``jwks_file`` are required.
ISSUER_SETTINGS: tuple[Setting, ...] = (
    Setting("auth.issuers", "issuer", str, None, "The issuer: the tokens' iss, exactly."),
    Setting(
        "auth.issuers",
        "audience",
        list,
        None,
        "A string or a list: a token's aud must contain one of them.",
    ),
    Setting(
        "auth.issuers",
        "jwks_url",
        str,
        None,
        "Where the issuer publishes its keys (JWKS): https, or http to a loopback host.",
    ),
    Setting(
        "auth.issuers",
        "jwks_file",
        str,
        None,
        "A JWKS file instead, relative to the configuration file.",
    ),
    Setting(
        "auth.issuers",
        "algorithms",
        list,
        ("RS256", "ES256"),
        "Signature algorithms accepted from the issuer (never none or HMAC).",
    ),
)

#: Every declared setting's default, by its attribute on :class:`Settings`.
DEFAULTS: dict[str, Any] = {s.attr: s.default for s in SETTINGS}
