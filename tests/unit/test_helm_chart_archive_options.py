"""The archive's file options in the Helm chart (`archive.compression`, the file limits,
`archive.startAt`, `archive.stagingDir`): each reaches `archive run` as the argument the
real CLI parses, and a value it would refuse (or a pod could not use) is refused by helm.
Found by an operator: the chart ran the archive with no way to set what `archive run
--help` offers, so a cluster's archive could not use zstd, smaller files or `latest`."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from streamlearn.archive.formats import CODECS
from tests.unit.test_helm_chart import KUBERNETES_VERSIONS, render_chart
from tests.unit.test_helm_chart_archive import BOOTSTRAP, _archive, _failure, _parsed

pytestmark = pytest.mark.unit

S3_ARCHIVE = (BOOTSTRAP, "archive.enabled=true", "archive.root=s3://lake/streamlearn")


def _args(*sets: str, json_sets: tuple[str, ...] = ()) -> list[str]:
    documents = render_chart(sets=(*S3_ARCHIVE, *sets), json_sets=json_sets)
    deployment = _archive(documents)
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args: list[str] = container["args"]
    return args


def test_the_file_options_reach_archive_run_as_the_cli_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = _args(
        "archive.format=parquet",
        "archive.compression=zstd",
        "archive.maxFileRecords=5000",
        "archive.maxFileBytes=8388608",
        "archive.startAt=latest",
        "archive.stagingDir=/data/staging",
        json_sets=("archive.idleCloseSeconds=2.5",),
    )
    params: dict[str, Any] = _parsed(args, monkeypatch)
    assert params["compression"] == "zstd"
    assert params["max_file_records"] == 5000
    assert params["max_file_bytes"] == 8 * 1024 * 1024
    assert params["idle_close_s"] == 2.5
    assert params["start_at"].value == "latest"
    assert str(params["staging_dir"]) == "/data/staging"


def test_unset_the_cli_keeps_its_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _args()
    params = _parsed(args, monkeypatch)
    assert params["compression"] is None
    assert (params["max_file_records"], params["max_file_bytes"]) == (100_000, 64 * 1024**2)
    assert params["idle_close_s"] == 60.0
    assert params["start_at"].value == "earliest"
    assert params["staging_dir"] is None
    assert not {"--compression", "--max-file-records", "--staging-dir"} & set(args)


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_every_codec_of_a_format_is_taken(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for codec in CODECS[fmt]:  # type: ignore[index]
        # --set-json: --set would make Avro's "null" codec a null (the value unset).
        args = _args(f"archive.format={fmt}", json_sets=(f'archive.compression="{codec}"',))
        assert _parsed(args, monkeypatch)["compression"] == codec


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("archive.format=avro", "archive.compression=zstd"),
         "archive.compression zstd: not a codec of avro files; one of: null, deflate, snappy"),
        (("archive.format=parquet", "archive.compression=deflate"),
         "archive.compression deflate: not a codec of parquet files; one of: none, snappy"),
        (("archive.maxFileRecords=0",), "at '/archive/maxFileRecords'"),
        (("archive.maxFileBytes=-1",), "at '/archive/maxFileBytes'"),
        (("archive.idleCloseSeconds=0",), "at '/archive/idleCloseSeconds'"),
        (("archive.startAt=newest",), "at '/archive/startAt'"),
        (("archive.stagingDir=staging",), "archive.stagingDir staging: an absolute path"),
        (("archive.stagingDir=/var/staging",),
         "archive.stagingDir /var/staging: the pod writes only under /data, /tmp and "
         "extraVolumeMounts"),
    ],
)  # fmt: skip
def test_a_value_archive_run_or_the_pod_would_refuse_is_refused_by_helm(
    sets: tuple[str, ...], message: str
) -> None:
    assert message in _failure(*S3_ARCHIVE, *sets)


def test_a_staging_dir_with_a_local_root_is_refused_as_unused() -> None:
    stderr = _failure(
        BOOTSTRAP, "archive.enabled=true", "archive.root=/archive",
        "archive.persistence.existingClaim=lake", "archive.stagingDir=/data/staging",
    )  # fmt: skip
    assert "archive.stagingDir /data/staging is given but archive.root /archive is local" in stderr


def test_a_staging_dir_on_a_volume_of_extra_volume_mounts_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = _args(
        "archive.stagingDir=/scratch/archive",
        json_sets=(
            'extraVolumes=[{"name":"scratch","emptyDir":{}}]',
            'extraVolumeMounts=[{"name":"scratch","mountPath":"/scratch"}]',
        ),
    )
    assert str(_parsed(args, monkeypatch)["staging_dir"]) == "/scratch/archive"
