"""The Helm chart's one-off pods and its either-or values, where a new user found them
wrong (rendered with helm, no cluster): the hook Jobs and the `helm test` pod could not
be placed on tainted or labelled nodes, and a secret given both inline and as an existing
Secret rendered with one of the two silently ignored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.test_helm_chart import CHART, _helm, _pod_specs, render_chart

pytestmark = pytest.mark.unit

BOOTSTRAP = "kafka.bootstrapServers=kafka:9092"
TAINT = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ml"]}]}
            ]
        }
    }
}


def _one_off_pods(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The hook Jobs' and the test pod's specs, by object name."""
    return {
        document["metadata"]["name"]: spec
        for document, spec in _pod_specs(documents)
        if "helm.sh/hook" in document["metadata"].get("annotations", {})
    }


def test_the_hooks_and_the_test_pod_are_placed_where_jobs_says() -> None:
    """Found by a new user: on a cluster whose nodes are all tainted (`dedicated=ml`) the
    parts were placed with their own tolerations, but the topics and schemas hooks could
    not be (they took no nodeSelector, tolerations or affinity): `helm install` waited for
    them until its timeout, and `helm test` the same."""
    documents = render_chart(
        sets=(BOOTSTRAP,),
        json_sets=(
            'jobs.nodeSelector={"pool": "ml"}',
            f"jobs.tolerations=[{json.dumps(TAINT)}]",
            f"jobs.affinity={json.dumps(AFFINITY)}",
        ),
    )
    pods = _one_off_pods(documents)
    assert set(pods) == {"rel-streamlearn-topics", "rel-streamlearn-schemas",
                         "rel-streamlearn-test-predict"}  # fmt: skip
    for name, spec in pods.items():
        assert spec.get("nodeSelector") == {"pool": "ml"}, name
        assert spec.get("tolerations") == [TAINT], name
        assert spec.get("affinity") == AFFINITY, name
    # The parts keep their own placement: jobs is for the one-off pods only.
    for document, spec in _pod_specs(documents):
        if document["kind"] == "Deployment":
            assert "nodeSelector" not in spec, document["metadata"]["name"]


def test_every_pod_pulls_its_image_with_the_release_s_pull_secrets() -> None:
    """Found by a new user: with the image in a private registry (`imagePullSecrets`), the
    parts and hooks pulled it and the `helm test` pod could not (ImagePullBackOff)."""
    documents = render_chart(
        sets=(BOOTSTRAP,), json_sets=('imagePullSecrets=[{"name": "registry-login"}]',)
    )
    specs = list(_pod_specs(documents))
    assert any(d["kind"] == "Pod" for d, _ in specs)
    for document, spec in specs:
        name = document["metadata"]["name"]
        assert spec.get("imagePullSecrets") == [{"name": "registry-login"}], name


def test_one_off_pods_take_no_placement_by_default() -> None:
    pods = _one_off_pods(render_chart(sets=(BOOTSTRAP,)))
    assert pods
    for spec in pods.values():
        assert not {"nodeSelector", "tolerations", "affinity"} & set(spec)


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (("signing.key=0123456789abcdef0123", "signing.existingSecret=keys"),
         "signing.key and signing.existingSecret"),
        (("pseudonymisation.key=0123456789abcdef0123", "pseudonymisation.existingSecret=keys"),
         "pseudonymisation.key and pseudonymisation.existingSecret"),
        (("kafka.securityProtocol=SASL_SSL", "kafka.sasl.mechanism=SCRAM-SHA-512",
          "kafka.sasl.username=sl", "kafka.sasl.password=pw", "kafka.sasl.existingSecret=kafka"),
         "kafka.sasl.password and kafka.sasl.existingSecret"),
    ],
)  # fmt: skip
def test_a_secret_given_inline_and_as_an_existing_secret_is_refused(
    sets: tuple[str, ...], complaint: str
) -> None:
    """Found by a new user: `signing.key` with `signing.existingSecret` rendered, and the
    parts read the existing Secret's key; the key given inline was stored nowhere and
    used by nothing, with no word (the same for the pseudonymisation key and the Kafka
    password). Which one the release uses must not be a guess: one of the two, said."""
    result = _helm(
        "template", "rel", str(CHART), "--kube-version", "1.30.0",
        *(a for s in (BOOTSTRAP, *sets) for a in ("--set", s)), check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout[:300]
    assert complaint in result.stderr, result.stderr
    assert "not both" in result.stderr, result.stderr
    # Either alone renders.
    inline = [s for s in sets if "existingSecret" not in s]
    existing = [s for s in sets if not s.split("=")[0].endswith((".key", ".password"))]
    for alone in (inline, existing):
        rendered = _helm(
            "template", "rel", str(CHART), "--kube-version", "1.30.0",
            *(a for s in (BOOTSTRAP, *alone) for a in ("--set", s)), check=False,
        )  # fmt: skip
        assert rendered.returncode == 0, (alone, rendered.stderr)
