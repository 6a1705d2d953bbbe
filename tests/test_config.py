"""Settings: file, environment and flags; every setting documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from queuey.config import SETTINGS, ConfigError, Settings, load
from tests.conftest import ROOT

GOOD = """
[server]
port = 6000
[storage]
url = "sqlite:///x.db"
settle_strong = 2
[application_keys]
one = ["k1", "sha256:%s"]
[cors]
origins = ["*"]
""" % ("ab" * 32)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "queuey.toml"
    path.write_text(text)
    return str(path)


def test_file_environment_and_flags_in_that_order(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    settings = load(path, environ={})
    assert (settings.port, settings.storage_url, settings.storage_settle_strong) == (
        6000,
        "sqlite:///x.db",
        2.0,
    )
    assert settings.application_keys == {"one": ("k1", "sha256:" + "ab" * 32)}
    assert settings.cors_origins == ("*",)
    env = {"QUEUEY_PORT": "7000", "QUEUEY_STORAGE_URL": "sqlite:///y.db", "QUEUEY_HOST": "::1"}
    assert load(path, environ=env).port == 7000
    assert load(path, environ=env).host == "::1"
    assert load(path, environ=env, overrides={"port": 8000}).port == 8000
    assert load(environ={"QUEUEY_CONFIG": path}).storage_url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("[limits]\nmax_message_bytes = true\n", {}, "limits.max_message_bytes: must be int"),
        ('[cors]\norigins = "*"\n', {}, "cors.origins: must be a list of strings"),
        ("[nope]\n", {}, "nope: unknown section"),
        ('[application_keys]\n"bad-name" = ["k"]\n', {}, "application_keys.bad-name:"),
        ('[application_keys]\na = ["sha256:12"]\n', {}, "application_keys.a: a hashed key"),
        ('[application_keys]\na = ["k"]\n', {"QUEUEY_PORT": "x"}, "QUEUEY_PORT: must be"),
        ("", {}, "application_keys: no application"),
        ("[server]\nport = 99999\n", {}, "server.port: 99999 is not a port (1..65535)"),
        ("[server]\nport = 0\n", {}, "server.port: 0 is not a port (1..65535)"),
        ("[server]\nworkers = 0\n", {}, "server.workers: 0 is not a number of workers"),
        (
            "[limits]\nidempotency_window = 0\n",
            {},
            "limits.idempotency_window: 0 is less than minimum value 1",
        ),
        (
            "[limits]\nidempotency_window = 630720001\n",
            {},
            "limits.idempotency_window: 630720001 is greater than maximum value 630720000",
        ),
        ('[application_keys]\na = ["k"]\n', {"QUEUEY_PORT": "70000"}, "QUEUEY_PORT: 70000 is not"),
        ('[application_keys]\na = ["k"]\n', {"QUEUEY_PORT": "9" * 5000}, "QUEUEY_PORT: 9999"),
        ('[application_keys]\na = ["k"]\n', {"QUEUEY_PORT": "²"}, "QUEUEY_PORT: must be"),
    ],
)
def test_problems_name_file_key_and_problem(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path, environ=environ)
    line = str(caught.value)
    assert "\n" not in line
    assert message in line
    if not message.startswith("QUEUEY_"):
        assert line.startswith(f"{path}: ")


def test_every_setting_is_declared_and_documented() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    fields = set(Settings.__dataclass_fields__) - {"application_keys", "path"}
    assert {s.attr for s in SETTINGS} == fields
    for setting in SETTINGS:
        assert f"`{setting.section}.{setting.key}`" in docs, setting
        assert getattr(Settings(), setting.attr) == (
            tuple(setting.default) if setting.type is list else setting.default
        )
        if setting.env:
            assert setting.env in docs
    documented = set(re.findall(r"^\| `(\w+)\.(\w+)`", docs, re.MULTILINE))
    declared = {(s.section, s.key) for s in SETTINGS} | {("application_keys", "NAME")}
    assert documented == declared


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": 65536}, "--port: 65536 is not a port (1..65535)"),
        ({"workers": 0}, "--workers: 0 is not a number of workers (at least 1)"),
    ],
)
def test_flags_are_checked_as_the_file_is(
    tmp_path: Path, overrides: dict[str, int], message: str
) -> None:
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(path, environ={}, overrides=overrides)
    assert load(path, environ={"QUEUEY_PORT": " 0065535 "}).port == 65535
