"""The values reference of docs/deploy.md: a table of every value of the chart's
:func:`~streamlearn.deploy.values_schema.values_schema`, with its type and description."""

from __future__ import annotations

from typing import Any

from streamlearn.deploy.placed_elsewhere import is_refusal
from streamlearn.deploy.values_schema import values_schema


def _type_of(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "anyOf" in schema and "type" not in schema:  # with a type, anyOf only refines it
        return " \\| ".join(_type_of(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    return " \\| ".join(kind) if isinstance(kind, list) else str(kind)


# Objects whose properties are settings, described in README's configuration table.
NOT_EXPANDED = frozenset({"config", "secretConfig.values"})
# Descriptions of the chart's structural values, by path or by their last name.
PATH_DESCRIPTIONS = {
    "nameOverride": "Replaces the chart's name in resource names.",
    "fullnameOverride": "Replaces `<release>-streamlearn` in resource names.",
    "image.repository": "The streamlearn image (the repository's Dockerfile).",
    "image.tag": "Empty: the chart's appVersion.",
    "image.pullPolicy": "Kubernetes image pull policy.",
    "imagePullSecrets": "Secrets to pull the image with.",
    "commonLabels": "Labels added to every object.",
    "kafka.sasl.existingSecret": "A Secret holding the SASL password (under `passwordKey`).",
    "kafka.sasl.passwordKey": "Key of the password in `kafka.sasl.existingSecret`.",
    "kafka.tls.caKey": "Key of the brokers' CA certificate in `kafka.tls.existingSecret`.",
    "kafka.tls.certKey": "Key of the client certificate (mutual TLS); empty: none.",
    "kafka.tls.keyKey": "Key of the client key (mutual TLS).",
    "httpTls.certKey": "Key of the certificate chain (PEM) in `httpTls.existingSecret`.",
    "httpTls.keyKey": "Key of the private key; empty: in the certificate's file.",
    "httpTls.caKey": "Key of the CA streamlearn's clients trust; empty: the system's.",
    "agents.metricsPort": "Port of every agent worker's /metrics, /healthz and /readyz.",
    "kafka.tls.keyPasswordKey": "The key in `existingSecret` holding the client key's "
    "password (an encrypted key).",
    "extraVolumes": "Volumes of every part and hook, for settings that name files "
    "(`config.geoip_database`, `config.topology_file`).",
    "extraVolumeMounts": "Where every container mounts them.",
    "podSecurityContext": "Pod security context of every part (non-root uid 1001, seccomp).",
    "containerSecurityContext": "Container security context of every part (read-only root, "
    "no privilege escalation, all capabilities dropped).",
    "serviceAccount.create": "Create a service account (its token is never mounted).",
    "serviceAccount.name": "Its name; empty: the release's full name.",
    "networkPolicy.enabled": "Restrict ingress and egress of every part.",
    "networkPolicy.kafkaPorts": "Broker ports egress is allowed to, besides every port of "
    "`kafka.bootstrapServers`.",
    "networkPolicy.ingressFrom": "NetworkPolicy peers allowed to reach the collector and the "
    "workers (empty: anyone; else these and the release's own pods), the registry and the "
    "agents' metrics port.",
    "networkPolicy.metricsFrom": "Peers allowed to reach every part's metrics port "
    "(Prometheus' namespace): the agents' and the registry's metrics port, and the collector's "
    "and the workers' API port, which serves their /metrics.",
    "metrics.serviceMonitor.interval": "Scrape interval.",
    "agents.sets.<name>.agents": "The agents this set's workers run (each agent in one "
    "enabled set; monitor in a set of its own).",
}
LEAF_DESCRIPTIONS = {
    "port": "Container and Service port.",
    "replicas": "Number of pods.",
    "resources": "Requests and limits of the container.",
    "existingSecretKey": "Key of the value in `existingSecret` (or in the chart's Secret).",
    "enabled": "Turn this on or off.",
    "minAvailable": "Pods that must stay up during voluntary disruptions.",
    "podAnnotations": "Annotations of the part's pods.",
    "nodeSelector": "Kubernetes node selector of the part's pods.",
    "tolerations": "Kubernetes tolerations of the part's pods.",
    "affinity": "Kubernetes affinity of the part's pods.",
    "type": "Kubernetes Service type (ClusterIP, LoadBalancer, ...).",
    "annotations": "Annotations of the Service.",
    "minReplicas": "Fewest pods the autoscaler keeps.",
    "maxReplicas": "Most pods the autoscaler makes.",
    "targetCPUUtilizationPercentage": "CPU use the autoscaler aims for.",
    "labels": "Labels (e.g. the one your Prometheus or Grafana selects on).",
}


def _describe(where: str, child: dict[str, Any]) -> str:
    text = child.get("description") or PATH_DESCRIPTIONS.get(where)
    return str(text or LEAF_DESCRIPTIONS.get(where.rsplit(".", 1)[-1], ""))


def _rows(schema: dict[str, Any], path: str) -> list[tuple[str, str, str]]:
    rows = []
    for name, child in schema.get("properties", {}).items():
        where = f"{path}.{name}" if path else name
        nested = child.get("type") == "object" and "properties" in child
        if nested and where not in NOT_EXPANDED and name != "resources":
            if _describe(where, child):
                rows.append((where, "object", _describe(where, child)))
            rows.extend(_rows(child, where))
        elif "patternProperties" in child:  # keyed by names of yours: each key's values
            rows.append((where, "object", _describe(where, child)))
            for entry in child["patternProperties"].values():
                rows.extend(_rows(entry, f"{where}.<name>"))
        elif where == "config":
            rows.append((where, "object", child["description"]))
            for setting, spec in child["properties"].items():
                if is_refusal(spec):  # a setting set elsewhere: not one to set here
                    continue
                text = spec.get("description", "")
                rows.append((f"config.{setting}", _type_of(spec), text))
        else:
            rows.append((where, _type_of(child), _describe(where, child)))
    return rows


REFERENCE_START = "<!-- values reference: generated by scripts/generate_values_schema.py -->"
REFERENCE_END = "<!-- end of the values reference -->"


def values_reference() -> str:
    """The values table of docs/deploy.md (between its generated-table markers)."""
    lines = ["| value | type | description |", "|---|---|---|"]
    for where, kind, text in _rows(values_schema(), ""):
        lines.append(f"| `{where}` | {kind} | {' '.join(text.split())} |")
    return "\n".join(lines) + "\n"
