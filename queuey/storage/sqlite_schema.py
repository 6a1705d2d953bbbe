"""Moved to :mod:`queuey.storage.sqlite.schema`; kept while ``bench/fill.py`` imports it here."""

from queuey.storage.sqlite.schema import MIGRATIONS, migrate, schema_version

__all__ = ["MIGRATIONS", "migrate", "schema_version"]
