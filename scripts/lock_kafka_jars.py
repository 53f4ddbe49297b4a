#!/usr/bin/env python3
"""Regenerate the pinned Kafka jar list (src/streamlearn/kafka_local/kafka-jars.lock.json).

A maintainer tool, not needed at run time: it resolves the broker's runtime classpath with
Maven (`mvn dependency:list` on a generated POM), then records every jar's coordinates,
size and sha256. Users only need Java and Python; `streamlearn kafka start` downloads the
jars named in the lock file directly from Maven Central and verifies each checksum.

    python scripts/lock_kafka_jars.py --kafka 4.1.2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

LOCK_PATH = Path(__file__).resolve().parents[1] / "src/streamlearn/kafka_local/kafka-jars.lock.json"

POM_TEMPLATE = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.streamlearn</groupId>
  <artifactId>embedded-kafka-lock</artifactId>
  <version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId><version>{kafka}</version></dependency>
    <!-- The kafka POM brings the slf4j API but no logging backend; the Apache
         distribution ships log4j2 with its slf4j 1.x binding, so do we. -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

COORD = re.compile(r"^\s+([\w.\-]+):([\w.\-]+):jar:([\w.\-]+):(compile|runtime)\s*$")


def resolve(kafka: str, scala: str, log4j: str, work: Path) -> list[tuple[str, str, str]]:
    (work / "pom.xml").write_text(POM_TEMPLATE.format(kafka=kafka, scala=scala, log4j=log4j))
    listing = work / "deps.txt"
    subprocess.run(
        ["mvn", "-q", "-B", "dependency:list", "-DincludeScope=runtime", f"-DoutputFile={listing}"],
        cwd=work,
        check=True,
    )
    coords = [
        m.groups()[:3] for line in listing.read_text().splitlines() if (m := COORD.match(line))
    ]
    return sorted(set(coords))


def local_jar(group: str, artifact: str, version: str) -> Path:
    return (
        Path.home()
        / ".m2/repository"
        / group.replace(".", "/")
        / artifact
        / version
        / f"{artifact}-{version}.jar"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kafka", required=True, help="Apache Kafka version, e.g. 4.1.2")
    parser.add_argument("--scala", default="2.13")
    parser.add_argument("--log4j", default="2.25.3")
    parser.add_argument(
        "--reason", default="", help="why this version is pinned (kept in the lock)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        coords = resolve(args.kafka, args.scala, args.log4j, Path(tmp))
    jars = []
    for group, artifact, version in coords:
        path = local_jar(group, artifact, version)
        data = path.read_bytes()
        jars.append(
            {
                "group": group,
                "artifact": artifact,
                "version": version,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    previous = json.loads(LOCK_PATH.read_text()) if LOCK_PATH.exists() else {}
    lock = {
        "kafka_version": args.kafka,
        "scala_version": args.scala,
        "log4j_version": args.log4j,
        "reason": args.reason or previous.get("reason", ""),
        "repository": "https://repo1.maven.org/maven2",
        "jars": jars,
    }
    LOCK_PATH.write_text(json.dumps(lock, indent=2) + "\n")
    print(f"wrote {LOCK_PATH} ({len(jars)} jars)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
