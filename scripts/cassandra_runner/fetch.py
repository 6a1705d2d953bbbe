"""Java and Maven discovery, and the Cassandra jars fetched from Maven Central.

Cassandra is not packaged by Debian and its download site is out of reach on
the project's machines, but the server is published on Maven Central as
``org.apache.cassandra:cassandra-all``; Maven's ``copy-dependencies`` puts it
and its runtime dependencies in ``var/cassandra/lib``.  Where ``java`` or
``mvn`` is missing, ``install_deps`` (or ``CI`` being set) installs them with
``apt-get install -y openjdk-17-jre-headless maven``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from scripts.cassandra_runner.state import LIB, STATE, CassandraError, log

CASSANDRA_VERSION = "5.0.8"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
LIB_MARKER = LIB / ".complete"

POM_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0
                             http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.queuey</groupId>
  <artifactId>cassandra-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def _install_allowed(install_deps: bool) -> bool:
    return install_deps or bool(os.environ.get("CI"))


def _apt_install() -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("installing openjdk-17-jre-headless and maven with apt-get")
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "openjdk-17-jre-headless", "maven"],
    ):
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)


def _java_major(java: str) -> int:
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    for word in (result.stderr + result.stdout).split():
        token = word.strip('"')
        if token[:1].isdigit():
            head = token.split(".")
            major = int(head[1]) if head[0] == "1" and len(head) > 1 else int(head[0])
            return major
    return 0


def find_java(install_deps: bool) -> str:
    """Return a Java 11 or 17 executable (Cassandra 5.0 supports nothing else)."""
    candidates: list[str] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("java-17-*/bin/java"))
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("java-11-*/bin/java"))
    for candidate in candidates:
        if os.access(candidate, os.X_OK) and _java_major(candidate) in (11, 17):
            return candidate
    if _install_allowed(install_deps):
        _apt_install()
        return find_java(install_deps=False)
    raise CassandraError(
        "no Java 11 or 17 found; install openjdk-17-jre-headless (or rerun with --install-deps)"
    )


def find_mvn(install_deps: bool) -> str:
    mvn = shutil.which("mvn")
    if mvn:
        return mvn
    if _install_allowed(install_deps):
        _apt_install()
        mvn = shutil.which("mvn")
        if mvn:
            return mvn
    raise CassandraError("mvn not found; install maven (or rerun with --install-deps)")


def jars_present() -> bool:
    """Whether a complete set of jars for CASSANDRA_VERSION is in var/cassandra/lib."""
    try:
        return LIB_MARKER.read_text().strip() == CASSANDRA_VERSION
    except OSError:
        return False


def fetch(install_deps: bool = False) -> Path:
    """Fetch cassandra-all and its runtime dependencies into var/cassandra/lib.

    Reuses the jars if already there and ~/.m2 for everything Maven downloads.
    Returns the lib directory.
    """
    if jars_present():
        return LIB
    mvn = find_mvn(install_deps)
    find_java(install_deps)  # Maven needs a JVM too.
    fetch_dir = STATE / "fetch"
    fetch_dir.mkdir(parents=True, exist_ok=True)
    pom = fetch_dir / "pom.xml"
    pom.write_text(POM_TEMPLATE.format(version=CASSANDRA_VERSION))
    staging = STATE / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    log(f"fetching Cassandra {CASSANDRA_VERSION} jars with Maven into {LIB}")
    began = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    jars = sorted(staging.glob("*.jar")) if staging.is_dir() else []
    main_jar = staging / f"cassandra-all-{CASSANDRA_VERSION}.jar"
    if result.returncode != 0 or not main_jar.is_file():
        raise CassandraError(
            f"mvn failed (exit {result.returncode}):\n{result.stdout[-4000:]}"
            f"{result.stderr[-4000:]}"
        )
    shutil.rmtree(LIB, ignore_errors=True)
    staging.rename(LIB)
    LIB_MARKER.write_text(CASSANDRA_VERSION + "\n")
    log(f"fetched {len(jars)} jars in {time.monotonic() - began:.1f}s")
    return LIB
