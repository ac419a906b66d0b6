"""Regenerate jars.txt, the broker's pinned jars, from pom.xml: `python -m cli.localbroker.pin_jars`.

A maintainer's tool (it needs Maven; `scanledger up` never does): Maven resolves the broker and its
run-time dependencies into ~/.m2, and each jar's size and sha256 are written down after its sha1 is
checked against the one Maven Central publishes, so the pins are Central's files and not a local copy.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from cli.localbroker.jars import CENTRAL, PINNED_LIST, Jar

POM = Path(__file__).resolve().parent / "pom.xml"
HEADER = """\
# The local Kafka broker's classpath: Apache Kafka and its run-time dependencies, each jar fetched from
# SCANLEDGER_MAVEN_REPO (default Maven Central) and refused unless its sha256 is the one below.
# Generated from pom.xml by `python -m cli.localbroker.pin_jars` (Maven resolves; Central's sha1 checked).
# group:artifact:version bytes sha256
"""


def resolved() -> list[tuple[Jar, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "deps.txt"
        subprocess.run(["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:list",
                        "-DincludeScope=runtime", "-DoutputAbsoluteArtifactFilename=true",
                        f"-DoutputFile={listing}"], check=True, stdin=subprocess.DEVNULL)
        lines = listing.read_text().splitlines()
    out = []
    for line in lines:
        # group:artifact:jar:version:scope:/path (a classifier would add a field: none of Kafka's has one)
        match = re.fullmatch(r"\s*([^:\s]+):([^:]+):jar:([^:]+):(?:compile|runtime):(/.+\.jar)", line)
        if match:
            group, artifact, version, path = match.groups()
            out.append((Jar(group, artifact, version, 0, ""), Path(path)))
        elif line.startswith(" ") and line.strip():
            raise SystemExit(f"cannot pin {line.strip()!r}: not a plain jar")
    return out


def main() -> None:
    rows = []
    with httpx.Client(timeout=30, follow_redirects=True) as client:
        for jar, path in resolved():
            data = path.read_bytes()
            published = client.get(jar.url(CENTRAL) + ".sha1")
            published.raise_for_status()
            if published.text.split()[0] != hashlib.sha1(data).hexdigest():
                raise SystemExit(f"{path} is not the {jar.coordinates} Maven Central publishes")
            rows.append(f"{jar.coordinates} {len(data)} {hashlib.sha256(data).hexdigest()}")
    PINNED_LIST.write_text(HEADER + "".join(f"{row}\n" for row in sorted(rows)))
    print(f"pinned {len(rows)} jars in {PINNED_LIST}", file=sys.stderr)


if __name__ == "__main__":
    main()
