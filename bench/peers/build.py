"""Fetching and building the peers into var/peers/, each at its pinned version.

Go programs come from the Go module proxy with ``go install module@version``
(or ``go build`` of a module in this repository, whose go.sum pins its
dependencies); GOPATH, GOMODCACHE and GOCACHE are under var/peers/go, so
nothing lands in the home folder. Java programs come from Maven Central:
Maven's ``copy-dependencies`` puts the artifact and its runtime dependencies
in one folder (Maven's own cache, ~/.m2, is reused as for Cassandra). Each
result is kept with a marker and reused by the next run; builds run at
``nice -n 10`` so that others on the machine keep their share.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.harness import ROOT

PEERS = ROOT / "var" / "peers"
GO_HOME = PEERS / "go"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
NICE = ("nice", "-n", "10")


class BuildError(RuntimeError):
    """A peer could not be fetched or built (a tool is missing, or the build failed)."""


def log(text: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {text}", flush=True)


def go_environment() -> dict[str, str]:
    """The environment of every ``go`` command: caches under var/peers/go, no toolchain download."""
    return dict(
        os.environ,
        GOPATH=str(GO_HOME),
        GOMODCACHE=str(GO_HOME / "pkg" / "mod"),
        GOCACHE=str(GO_HOME / "cache"),
        GOTOOLCHAIN="local",
        GOFLAGS="-modcacherw",
        CGO_ENABLED="0",
    )


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BuildError(f"{name} is not installed")
    return found


def _run(
    command: list[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    log(f"{what}: {' '.join(command)}")
    began = time.monotonic()
    result = subprocess.run(
        [*NICE, *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(
            f"{what} failed (exit {result.returncode}):\n{result.stdout[-4000:]}"
            f"{result.stderr[-4000:]}"
        )
    log(f"{what}: done in {time.monotonic() - began:.0f} s")


def _marked(folder: Path, stamp: str) -> bool:
    try:
        return (folder / ".complete").read_text().strip() == stamp
    except OSError:
        return False


def go_install(module: str, version: str, binary: str) -> Path:
    """``go install module@version`` into var/peers/NAME-VERSION/; the binary's path.

    ``binary`` is the name go gives the program (the module path's last
    element that is not a major version).
    """
    folder = PEERS / f"{binary}-{version}"
    target = folder / binary
    stamp = f"{module}@{version}"
    if _marked(folder, stamp) and target.is_file():
        return target
    go = _tool("go")
    folder.mkdir(parents=True, exist_ok=True)
    _run(
        [go, "install", f"{module}@{version}"],
        f"building {stamp}",
        env=go_environment() | {"GOBIN": str(folder)},
    )
    (folder / ".complete").write_text(stamp + "\n")
    return target


def go_build(source: Path, binary: str) -> Path:
    """``go build`` of a module of this repository into var/peers/; the binary's path.

    Built again whenever a source file, go.mod or go.sum is newer than the binary.
    """
    target = PEERS / binary
    sources = [p for p in source.iterdir() if p.suffix in (".go", ".mod", ".sum")]
    newest = max(p.stat().st_mtime for p in sources)
    if target.is_file() and target.stat().st_mtime >= newest:
        return target
    PEERS.mkdir(parents=True, exist_ok=True)
    _run(
        [_tool("go"), "build", "-o", str(target), "."],
        f"building {binary}",
        source,
        go_environment(),
    )
    return target


POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.queuey</groupId>
  <artifactId>peer-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>{group}</groupId>
      <artifactId>{artifact}</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def maven_fetch(group: str, artifact: str, version: str, name: str) -> Path:
    """The artifact and its runtime dependencies in var/peers/NAME-VERSION/lib; that folder."""
    folder = PEERS / f"{name}-{version}"
    lib = folder / "lib"
    stamp = f"{group}:{artifact}:{version}"
    if _marked(folder, stamp) and lib.is_dir():
        return lib
    mvn = _tool("mvn")
    _tool("java")  # Maven needs it too
    folder.mkdir(parents=True, exist_ok=True)
    pom = folder / "pom.xml"
    pom.write_text(POM.format(group=group, artifact=artifact, version=version))
    staging = folder / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    _run(
        [mvn, "-B", "-q", "-f", str(pom), f"{DEPENDENCY_PLUGIN}:copy-dependencies",
         f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
        f"fetching {stamp}",
    )  # fmt: skip
    if not (staging / f"{artifact}-{version}.jar").is_file():
        raise BuildError(f"Maven did not fetch {artifact}-{version}.jar into {staging}")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    (folder / ".complete").write_text(stamp + "\n")
    return lib


def toolchains() -> list[str]:
    """What built and runs the peers, one sentence each."""
    out = []
    if shutil.which("go"):
        result = subprocess.run(["go", "version"], capture_output=True, text=True, check=False)
        out.append(f"Go peers built with `{result.stdout.strip()}` (`CGO_ENABLED=0`).")
    if shutil.which("java"):
        result = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
        first = (result.stderr or result.stdout).splitlines()[:1]
        out.append(f"Java peers run on `{first[0] if first else 'java'}`.")
    return out
