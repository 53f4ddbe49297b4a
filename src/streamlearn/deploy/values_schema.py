"""``values.schema.json`` of the Helm chart, generated from :class:`~streamlearn.settings.Settings`.

The chart passes ``config`` (any setting by its field name) to every part as
``STREAMLEARN_*`` variables, and builds the Kafka, registry, topic and signing settings from
its own values; both are checked here with the types, enums and bounds the services apply
when they read them, so ``helm install`` refuses what a service would refuse at start.
``scripts/generate_values_schema.py`` writes the file; a test fails when it drifts.
"""

from __future__ import annotations

import json
from copy import deepcopy
from typing import Any

from streamlearn.archive.formats import CODECS
from streamlearn.deploy.placed_elsewhere import CHART_VALUE_OF, refusals
from streamlearn.models import SPECS
from streamlearn.secret_settings import SECRET_SETTING_NAMES
from streamlearn.settings import Settings
from streamlearn.settings_values import SIGNING_KEY_MIN_CHARS

# Settings the chart sets itself (from dedicated values, secrets or the pod's layout), and
# settings of the embedded broker, which has no place in a cluster.
CHART_MANAGED = frozenset(CHART_VALUE_OF)


SECRET_SETTINGS = SECRET_SETTING_NAMES - CHART_MANAGED
"""Secret settings the chart has no value of its own for: never in ``config`` (which goes
into a ConfigMap), only in ``secretConfig``, stored in a Secret and given to the parts that
use them (the chart's ``streamlearn.secretSettingParts``)."""
# JSON-schema keywords with no meaning to Helm's validator, dropped for a readable file.
DROPPED_KEYWORDS = ("title", "format", "writeOnly")


ISO_8601 = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$"
"""What a datetime setting takes, as text (Helm's validator ignores ``format``)."""


def _clean(schema: Any) -> Any:
    if isinstance(schema, dict):
        cleaned = {k: _clean(v) for k, v in schema.items() if k not in DROPPED_KEYWORDS}
        if schema.get("format") == "date-time":
            cleaned["pattern"] = ISO_8601
        if "not" in cleaned.get("propertyNames", {}):
            # Keys that are secrets (write keys): Helm's message for a key it refuses quotes
            # the key, so they are left to the collector, whose message does not.
            del cleaned["propertyNames"]["not"]
        if cleaned.get("propertyNames") == {}:
            del cleaned["propertyNames"]
        return cleaned
    if isinstance(schema, list):
        return [_clean(v) for v in schema]
    return schema


def _inline(schema: Any, definitions: dict[str, Any]) -> Any:
    """``schema`` with each ``$ref`` to the settings' ``$defs`` replaced by the definition
    (the chart's schema holds the settings' properties, not their ``$defs``)."""
    if isinstance(schema, dict):
        reference = schema.get("$ref", "")
        if reference.startswith("#/$defs/"):
            return _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {k: _inline(v, definitions) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, definitions) for v in schema]
    return schema


def _settings() -> dict[str, Any]:
    full = Settings.model_json_schema()
    properties: dict[str, Any] = _clean(_inline(full["properties"], full.get("$defs", {})))
    # What the services check beyond the settings' types: a spec that exists.
    properties["models"]["items"] = {"enum": sorted(SPECS)}
    return properties


def _setting(name: str, description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = deepcopy(_settings()[name])
    schema.pop("default", None)
    if description:
        schema["description"] = description
    return schema


def _object(properties: dict[str, Any], description: str = "", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        **extra,
    }
    if description:
        schema["description"] = description
    return schema


STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
REPLICAS = {"type": "integer", "minimum": 0}
ANY_OBJECT = {"type": "object"}
ANY_LIST = {"type": "array"}
RESOURCES = _object(
    {"requests": ANY_OBJECT, "limits": ANY_OBJECT},
    "Kubernetes resource requests and limits of the part's container.",
)
POD_PLACEMENT = {
    "nodeSelector": ANY_OBJECT,
    "tolerations": ANY_LIST,
    "affinity": ANY_OBJECT,
    "topologySpreadConstraints": {
        "type": ["array", "null"],
        "description": "null: spread over nodes and zones (ScheduleAnyway).",
    },
}
PDB = _object(
    {"enabled": BOOLEAN, "minAvailable": {"type": ["integer", "string"]}},
    "PodDisruptionBudget of the part (when it has more than one replica).",
)


def _part(extra: dict[str, Any], description: str) -> dict[str, Any]:
    return _object(
        {
            "replicas": REPLICAS,
            "resources": RESOURCES,
            "podDisruptionBudget": PDB,
            "podAnnotations": ANY_OBJECT,
            **POD_PLACEMENT,
            **extra,
        },
        description,
    )


def _keyed_secret(
    description: str,
    min_chars: int = 0,
    refused: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A secret value: created in the chart's Secret from ``key`` (empty: not given; else
    at least ``min_chars`` long and not matching ``refused``'s ``not``), or read from
    ``existingSecret`` under ``existingSecretKey``."""
    key: dict[str, Any] = {**STRING, "description": "The value (stored in the chart's Secret)."}
    if min_chars:
        key["anyOf"] = [{"const": ""}, {"minLength": min_chars, **(refused or {})}]
    return _object(
        {
            "key": key,
            "existingSecret": {
                **STRING,
                "description": "Name of a Secret you manage; then `key` is not used.",
            },
            "existingSecretKey": {**STRING, "minLength": 1},
            **extra,
        },
        description,
    )


def settings_url_pattern() -> str:
    """The registry URL's pattern, as the setting's (http:// or https:// with a host)."""
    return str(_settings()["schema_registry_url"]["pattern"])


def _key_refused(setting: str) -> dict[str, Any]:
    """What an HMAC key must not match, as ``setting`` says (whitespace around it)."""
    schema = _settings()[setting]
    (refused,) = [choice["not"] for choice in schema["anyOf"] if "not" in choice]
    return {"not": refused}


def _archive_file_options() -> dict[str, Any]:
    """``archive run``'s options of its files, with the CLI's bounds (null or empty: the
    CLI's default); a codec's fit to ``format`` and a staging directory's fit to the pod
    are checked by the templates."""
    return {
        "compression": {
            **STRING,
            "description": f"Avro codec ({', '.join(CODECS['avro'])}) or Parquet compression "
            f"({', '.join(CODECS['parquet'])}) of `format` (`--compression`); empty: snappy.",
        },
        "maxFileRecords": {
            "type": ["integer", "null"],
            "minimum": 1,
            "description": "A file closes at this many records; null: 100000.",
        },
        "maxFileBytes": {
            "type": ["integer", "null"],
            "minimum": 1,
            "description": "A file closes at this many bytes of Kafka keys and values; "
            "null: 64 MiB.",
        },
        "idleCloseSeconds": {
            "type": ["number", "null"],
            "minimum": 0.001,
            "description": "A file that got no record for this long closes; null: 60.",
        },
        "startAt": {
            "enum": ["earliest", "latest"],
            "description": "Where a partition without archived files starts.",
        },
        "stagingDir": {
            **STRING,
            "description": "In-progress files of an s3:// root, an absolute path under /data, "
            "/tmp or an `extraVolumeMounts` path; empty: under /data (the pod's emptyDir).",
        },
    }


def _archive() -> dict[str, Any]:
    """The archive agent (``archive run``): what the templates cannot check across values
    (a local root needs a claim) they refuse with ``fail``."""
    return _part(
        {
            "enabled": {**BOOLEAN, "description": "Run `archive run` (default: off)."},
            "root": {
                **STRING,
                "description": "Where the files go: `s3://bucket/prefix`, or a local path "
                "with `archive.persistence.existingClaim` mounted there. Required when enabled.",
            },
            "format": {"enum": ["avro", "parquet"], "description": "File format."},
            **_archive_file_options(),
            "topics": {
                "type": "array",
                "uniqueItems": True,
                "items": {"type": "string", "pattern": r"^[^,\s]+$"},
                "description": "Topology names or shell patterns (`--topics`); empty: the "
                "agent's defaults (telemetry.*, events.clean, events.sessions, "
                "training.examples).",
            },
            "s3": _object(
                {
                    "endpointUrl": {
                        **STRING,
                        "anyOf": [{"const": ""}, {"pattern": settings_url_pattern()}],
                        "description": "An S3-compatible endpoint (MinIO, Ceph, R2); empty: AWS.",
                    },
                    "region": {**STRING, "description": "The bucket's region."},
                    "existingSecret": {
                        **STRING,
                        "description": "A Secret of yours with the store's access key, given to "
                        "the archive's pod alone (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); "
                        "empty: the AWS SDK's own chain (a node's role).",
                    },
                    "accessKeyIdKey": {
                        **STRING,
                        "description": "Key of the access key id in `existingSecret`.",
                    },
                    "secretAccessKeyKey": {
                        **STRING,
                        "description": "Key of the secret access key in `existingSecret`.",
                    },
                },
                "The object store of an s3:// root.",
            ),
            "persistence": _object(
                {
                    "existingClaim": {
                        **STRING,
                        "description": "A PersistentVolumeClaim of yours mounted at a local "
                        "root (ReadWriteMany for more than one replica).",
                    }
                },
                "A local root's volume.",
            ),
            "metricsPort": {**PORT, "description": "Port of /metrics, /healthz and /readyz."},
            "networkPolicy": _object(
                {
                    "egressPorts": {
                        "type": "array",
                        "items": PORT,
                        "description": "Ports the archive's pods may reach the object store "
                        "on, besides the port of `s3.endpointUrl`.",
                    },
                    "egressTo": {
                        **ANY_LIST,
                        "description": "NetworkPolicy peers of the object store (e.g. an "
                        "ipBlock's CIDR); empty: anywhere.",
                    },
                },
                "Egress of the archive's pods alone to the object store (with "
                "networkPolicy.enabled).",
            ),
        },
        "The archive agent: topics to hourly Avro or Parquet files, exactly once "
        "(docs/archive.md).",
    )


def values_schema() -> dict[str, Any]:
    settings = _settings()
    config = {
        name: schema
        for name, schema in settings.items()
        if name not in CHART_MANAGED and name not in SECRET_SETTINGS
    }
    # The others are refused, each saying where it goes (placed_elsewhere).
    config = {**config, **refusals(SECRET_SETTINGS)}
    secret_config = _object(
        {
            "existingSecret": {
                **STRING,
                "description": "A Secret you manage whose keys are the variables "
                "(`STREAMLEARN_SERVE_API_TOKENS`, ...); each part gets the ones it uses.",
            },
            "values": _object(
                {name: settings[name] for name in sorted(SECRET_SETTINGS)},
                "Secret settings by name: stored in the chart's Secret, given only to the "
                "parts that use them.",
            ),
        },
        "Secret settings (tokens, write keys, passwords): never in the ConfigMap.",
    )
    sasl = _object(
        {
            "mechanism": _setting("kafka_sasl_mechanism"),
            "username": _setting("kafka_sasl_username"),
            "password": {**STRING, "description": "Created in the chart's Secret when set."},
            "existingSecret": STRING,
            "passwordKey": {**STRING, "minLength": 1},
            "users": {
                "type": "object",
                "description": "A Kafka user per part, for least privilege with `streamlearn "
                "acls apply`: collector, serve, registry, an agent set by its name, archive, ops "
                "(the topics hook). A part not listed logs in as `username`.",
                "additionalProperties": _object(
                    {
                        "username": {**STRING, "minLength": 1},
                        "existingSecret": {**STRING, "minLength": 1},
                        "passwordKey": STRING,
                    },
                    "The part's user; its password in an existing Secret (key passwordKey, "
                    "default `password`).",
                    required=["username", "existingSecret"],
                ),
            },
        },
        "SASL credentials (security protocol SASL_*).",
    )
    tls = _object(
        {
            "existingSecret": {
                **STRING,
                "description": "Secret with the CA (and client certificate and key for mTLS).",
            },
            "caKey": STRING,
            "certKey": STRING,
            "keyKey": STRING,
            "keyPasswordKey": STRING,
        },
        "TLS to the brokers (security protocol SSL or SASL_SSL).",
    )
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "streamlearn Helm chart values (generated from streamlearn.settings.Settings)",
        "type": "object",
        "additionalProperties": False,
        "required": ["kafka"],
        "properties": {
            "nameOverride": STRING,
            "fullnameOverride": STRING,
            "image": _object(
                {
                    "repository": STRING,
                    "tag": STRING,
                    "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                }
            ),
            "imagePullSecrets": ANY_LIST,
            "commonLabels": ANY_OBJECT,
            "logLevel": _setting("log_level"),
            "kafka": _object(
                {
                    "bootstrapServers": {
                        **_setting("kafka_bootstrap"),
                        "minLength": 1,
                    },
                    "securityProtocol": _setting("kafka_security_protocol"),
                    "sasl": sasl,
                    "tls": tls,
                    "topicReplicationFactor": _setting("topic_replication_factor"),
                },
                "The Kafka cluster streamlearn runs against (yours: MSK, Confluent Cloud, "
                "Strimzi, ...).",
                required=["bootstrapServers"],
            ),
            "httpTls": _object(
                {
                    "existingSecret": {
                        **STRING,
                        "description": "Secret with the servers' certificate chain and key; "
                        "empty: plain HTTP.",
                    },
                    "certKey": STRING,
                    "keyKey": STRING,
                    "caKey": STRING,
                },
                "HTTPS for the collector, workers and registry (they then refuse plain HTTP).",
            ),
            "schemaRegistry": _object(
                {
                    "url": {
                        **STRING,
                        "anyOf": [{"const": ""}, {"pattern": settings_url_pattern()}],
                        "description": "An existing Confluent-compatible registry; empty: the "
                        "chart runs streamlearn's.",
                    },
                    "port": PORT,
                    "replicas": REPLICAS,
                    "resources": RESOURCES,
                    **POD_PLACEMENT,
                }
            ),
            "topics": _object(
                {
                    "prefix": _setting("topic_prefix"),
                    "apply": {**BOOLEAN, "description": "Run `topics apply` as a hook."},
                }
            ),
            "schemas": _object(
                {"register": {**BOOLEAN, "description": "Run `schemas register` as a hook."}}
            ),
            "signing": _keyed_secret(
                "The HMAC key that signs model snapshots (learner) and verifies them (workers).",
                min_chars=SIGNING_KEY_MIN_CHARS,
                refused=_key_refused("model_signing_key"),
                keyId=_setting("model_signing_key_id"),
            ),
            "pseudonymisation": _keyed_secret(
                "The key of config.ip_policy=pseudonymise.",
                min_chars=SIGNING_KEY_MIN_CHARS,
                refused=_key_refused("pseudonymisation_key"),
            ),
            "secretConfig": secret_config,
            "config": _object(
                config,
                "Any other setting by its name (README, Configuration): passed to every part "
                "as STREAMLEARN_<NAME>.",
            ),
            "collector": _part(
                {"port": PORT, "service": _object({"type": STRING, "annotations": ANY_OBJECT})},
                "The collector (POST /v1/events, GET /streamlearn.js).",
            ),
            "serve": _part(
                {
                    "port": PORT,
                    "service": _object({"type": STRING, "annotations": ANY_OBJECT}),
                    "autoscaling": _object(
                        {
                            "enabled": BOOLEAN,
                            "minReplicas": {"type": "integer", "minimum": 1},
                            "maxReplicas": {"type": "integer", "minimum": 1},
                            "targetCPUUtilizationPercentage": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 100,
                            },
                        }
                    ),
                },
                "The prediction workers.",
            ),
            "agents": _object(
                {
                    "metricsPort": PORT,
                    "resources": RESOURCES,
                    "podDisruptionBudget": PDB,
                    **POD_PLACEMENT,
                    "sets": {
                        "type": "object",
                        "description": "Deployments of agents, by name: each its own "
                        "consumer group (streamlearn-<name>).",
                        # The name is in the Deployment's and container's names: a DNS label.
                        # (patternProperties, not propertyNames, which Helm's validator
                        # reports at another value's path.)
                        "additionalProperties": False,
                        "patternProperties": {
                            "^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$": _object(
                                {
                                    "enabled": BOOLEAN,
                                    "agents": {
                                        "type": "array",
                                        "minItems": 1,
                                        "uniqueItems": True,
                                        "items": {
                                            "enum": [
                                                "preprocess",
                                                "sessionise",
                                                "label-join",
                                                "learner",
                                                "monitor",
                                            ]
                                        },
                                    },
                                    "replicas": REPLICAS,
                                    "resources": RESOURCES,
                                },
                                required=["agents"],
                            )
                        },
                    },
                }
            ),
            "archive": _archive(),
            "extraVolumes": ANY_LIST,
            "extraVolumeMounts": ANY_LIST,
            "podSecurityContext": ANY_OBJECT,
            "containerSecurityContext": ANY_OBJECT,
            "serviceAccount": _object({"create": BOOLEAN, "name": STRING}),
            "networkPolicy": _object(
                {
                    "enabled": BOOLEAN,
                    "kafkaPorts": {"type": "array", "items": PORT, "minItems": 1},
                    "ingressFrom": ANY_LIST,
                    "metricsFrom": ANY_LIST,
                }
            ),
            "metrics": _object(
                {
                    "serviceMonitor": _object(
                        {"enabled": BOOLEAN, "interval": STRING, "labels": ANY_OBJECT}
                    ),
                    "prometheusRule": _object({"enabled": BOOLEAN, "labels": ANY_OBJECT}),
                    "grafanaDashboard": _object({"enabled": BOOLEAN, "labels": ANY_OBJECT}),
                }
            ),
            "jobs": _object(
                {
                    "nodeSelector": ANY_OBJECT,
                    "tolerations": ANY_LIST,
                    "affinity": ANY_OBJECT,
                },
                "Where the one-off pods run: the topics and schemas hooks and the `helm "
                "test` pod (the parts' placement is their own).",
            ),
            "tests": _object(
                {
                    "model": {
                        "enum": sorted(SPECS),
                        "description": "The model `helm test` asks for a prediction: one of "
                        "config.models.",
                    }
                }
            ),
        },
    }


def render() -> str:
    return json.dumps(values_schema(), indent=2, sort_keys=False) + "\n"
