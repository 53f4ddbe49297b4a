{{/* Names: <release>-streamlearn unless the release name already says streamlearn. */}}
{{- define "streamlearn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamlearn.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Kubernetes' recommended labels; "component" is the part. */}}
{{- define "streamlearn.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "streamlearn.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: streamlearn
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "streamlearn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamlearn.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "streamlearn.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "streamlearn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "streamlearn.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "streamlearn.registryUrl" -}}
{{- if .Values.schemaRegistry.url -}}
{{- .Values.schemaRegistry.url | trimSuffix "/" -}}
{{- else -}}
{{- printf "%s://%s-registry:%v" (include "streamlearn.httpScheme" .) (include "streamlearn.fullname" .) .Values.schemaRegistry.port -}}
{{- end -}}
{{- end -}}

{{/* "https" when the servers speak HTTPS only (httpTls, or a certificate given under
     config), else "http". */}}
{{- define "streamlearn.httpScheme" -}}
{{- if or .Values.httpTls.existingSecret .Values.config.http_tls_certfile -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/* The chart's own Secret, when it holds anything: the hooks' copy (a hook resource, made
     before the topics and schemas hooks run). */}}
{{- define "streamlearn.secretName" -}}
{{- printf "%s-secrets" (include "streamlearn.fullname" .) -}}
{{- end -}}

{{/* What the parts run with: a regular ConfigMap and Secret, "<fullname>-settings", applied
     only once the hooks have passed and restored by `helm rollback`; the hooks read their own
     copies ("-config", "-secrets"), made before them. With one object for both, a refused
     upgrade left its settings live for every pod started after it, and a rollback never
     restored them. */}}
{{- define "streamlearn.settingsName" -}}
{{- printf "%s-settings" (include "streamlearn.fullname" .) -}}
{{- end -}}

{{/* The ConfigMap and Secret a container reads (.root, .component): the hooks' or the parts'. */}}
{{- define "streamlearn.configFor" -}}
{{- if hasSuffix "-hook" .component -}}
{{- printf "%s-config" (include "streamlearn.fullname" .root) -}}
{{- else -}}
{{- include "streamlearn.settingsName" .root -}}
{{- end -}}
{{- end -}}

{{- define "streamlearn.secretFor" -}}
{{- if hasSuffix "-hook" .component -}}
{{- include "streamlearn.secretName" .root -}}
{{- else -}}
{{- include "streamlearn.settingsName" .root -}}
{{- end -}}
{{- end -}}

{{- define "streamlearn.needsSasl" -}}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol -}}true{{- end -}}
{{- end -}}

{{- define "streamlearn.needsTls" -}}
{{- if or (eq .Values.kafka.securityProtocol "SSL") (eq .Values.kafka.securityProtocol "SASL_SSL") -}}true{{- end -}}
{{- end -}}

{{/* Which parts get each secret setting, by kind of part (agents-<set> is "agents",
     <name>-hook is "<name>"): a part not named gets none (least privilege). */}}
{{- define "streamlearn.secretSettingParts" -}}
serve_api_tokens: [serve, test]
collector_write_keys: [collector]
registry_writers: [registry]
schema_registry_basic_auth: [collector, serve, agents, schemas, test, archive]
model_previous_signing_key: [serve, learner]
{{- end -}}

{{/* The secret settings a part (kind, see above) uses, as env entries referencing the
     chart's Secret (given values) or the one named by secretConfig.existingSecret. */}}
{{- define "streamlearn.secretSettingsEnv" -}}
{{- $root := .root -}}
{{- $kind := .kind -}}
{{- $agents := .agents | default list -}}
{{- $secretName := .secretName | default (include "streamlearn.settingsName" $root) -}}
{{- $given := $root.Values.secretConfig.values | default dict -}}
{{- range $name, $parts := fromYaml (include "streamlearn.secretSettingParts" $root) }}
{{- /* An agent set gets what "agents" get, and what one of its agents is named for. */}}
{{- $uses := has $kind $parts }}
{{- if eq $kind "agents" }}
{{- range $agent := $agents }}
{{- if has $agent $parts }}{{- $uses = true }}{{- end }}
{{- end }}
{{- end }}
{{- if $uses }}
{{- $variable := printf "STREAMLEARN_%s" (upper $name) }}
{{- if and (hasKey $given $name) (not (kindIs "invalid" (get $given $name))) }}
- name: {{ $variable }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ $variable }}
{{- else if $root.Values.secretConfig.existingSecret }}
- name: {{ $variable }}
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.secretConfig.existingSecret }}
      key: {{ $variable }}
      optional: true
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The kind of a part's component name: agents-<set> is "agents", <name>-hook "<name>". */}}
{{- define "streamlearn.partKind" -}}
{{- if hasPrefix "agents-" . -}}agents{{- else -}}{{ trimSuffix "-hook" . }}{{- end -}}
{{- end -}}

{{/* The kafka.sasl.users keys of the parts that log in to Kafka in this release. */}}
{{- define "streamlearn.kafkaParts" -}}
{{- $parts := list "collector" "serve" -}}
{{- if not .Values.schemaRegistry.url -}}{{- $parts = append $parts "registry" -}}{{- end -}}
{{- if or .Values.topics.apply .Values.schemas.register -}}{{- $parts = append $parts "ops" -}}{{- end -}}
{{- range $set, $spec := .Values.agents.sets -}}
{{- if ne $spec.enabled false -}}{{- $parts = append $parts $set -}}{{- end -}}
{{- end -}}
{{- if .Values.archive.enabled -}}{{- $parts = append $parts "archive" -}}{{- end -}}
{{- toYaml $parts -}}
{{- end -}}

{{/* "true" when some part logs in as the shared kafka.sasl user (it has no user of its own). */}}
{{- define "streamlearn.sharedKafkaUser" -}}
{{- $users := .Values.kafka.sasl.users | default dict -}}
{{- range $part := fromYamlArray (include "streamlearn.kafkaParts" .) -}}
{{- if not (hasKey $users $part) -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* The key of a component in kafka.sasl.users: agents-<set> is "<set>", a hook "ops". */}}
{{- define "streamlearn.kafkaUserKey" -}}
{{- if hasPrefix "agents-" . -}}{{ trimPrefix "agents-" . }}{{- else if hasSuffix "-hook" . -}}ops{{- else -}}{{ . }}{{- end -}}
{{- end -}}

{{/* Environment of a streamlearn container (.root, .component, .agents): the ConfigMap,
     then the secrets it uses, by reference, then the part's own entries (.extraEnv: the
     archive's object store credentials). */}}
{{- define "streamlearn.env" -}}
{{- $entries := include "streamlearn.envEntries" . -}}
envFrom:
  - configMapRef:
      name: {{ include "streamlearn.configFor" . }}
{{- if or (trim $entries) .extraEnv }}
env:{{ $entries }}
{{- with .extraEnv }}
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The env entries of streamlearn.env, each indented by two (none for a part given no
     secret). An agent set's agents (.agents): a key goes to the sets whose agents use it. */}}
{{- define "streamlearn.envEntries" -}}
{{- $kind := include "streamlearn.partKind" .component -}}
{{- $component := .component -}}
{{- $kafkaUser := get (default dict .root.Values.kafka.sasl.users) (include "streamlearn.kafkaUserKey" .component) -}}
{{- $agents := .agents | default list -}}
{{- $secretName := include "streamlearn.secretFor" . -}}
{{- with .root }}
  {{- /* Signs snapshots (the learner) and verifies what the workers load (serve): no
       other part may hold it (least privilege). */}}
  {{- if or (eq $kind "serve") (has "learner" $agents) }}
  - name: STREAMLEARN_MODEL_SIGNING_KEY
    valueFrom:
      secretKeyRef:
        name: {{ default $secretName .Values.signing.existingSecret }}
        key: {{ .Values.signing.existingSecretKey }}
  {{- end }}
  {{- /* `schemas register` talks to the registry only: no Kafka password (least privilege). */}}
  {{- $sasl := and (include "streamlearn.needsSasl" .) (ne $component "schemas-hook") }}
  {{- if and $sasl $kafkaUser }}
  {{- /* The part's own user (overrides the ConfigMap's username). */}}
  - name: STREAMLEARN_KAFKA_SASL_USERNAME
    value: {{ $kafkaUser.username | quote }}
  - name: STREAMLEARN_KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ $kafkaUser.existingSecret }}
        key: {{ default "password" $kafkaUser.passwordKey }}
  {{- else if $sasl }}
  - name: STREAMLEARN_KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ default $secretName .Values.kafka.sasl.existingSecret }}
        key: {{ if .Values.kafka.sasl.existingSecret }}{{ .Values.kafka.sasl.passwordKey }}{{ else }}kafka-sasl-password{{ end }}
  {{- end }}
  {{- if and (include "streamlearn.needsTls" .) .Values.kafka.tls.existingSecret .Values.kafka.tls.keyPasswordKey }}
  - name: STREAMLEARN_KAFKA_SSL_KEY_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ .Values.kafka.tls.existingSecret }}
        key: {{ .Values.kafka.tls.keyPasswordKey }}
  {{- end }}
  {{- if and (or .Values.pseudonymisation.existingSecret .Values.pseudonymisation.key) (has "preprocess" $agents) }}
  - name: STREAMLEARN_PSEUDONYMISATION_KEY
    valueFrom:
      secretKeyRef:
        name: {{ default $secretName .Values.pseudonymisation.existingSecret }}
        key: {{ .Values.pseudonymisation.existingSecretKey }}
  {{- end }}
  {{- with include "streamlearn.secretSettingsEnv" (dict "root" . "kind" $kind "agents" $agents "secretName" $secretName) }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Writable places of a read-only container, and the brokers' TLS material. */}}
{{- define "streamlearn.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: data
    mountPath: /data
  {{- if and (include "streamlearn.needsTls" .) .Values.kafka.tls.existingSecret }}
  - name: kafka-tls
    mountPath: /etc/streamlearn/kafka-tls
    readOnly: true
  {{- end }}
  {{- if .Values.httpTls.existingSecret }}
  - name: http-tls
    mountPath: /etc/streamlearn/http-tls
    readOnly: true
  {{- end }}
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "streamlearn.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
  - name: data
    emptyDir: {}
  {{- if and (include "streamlearn.needsTls" .) .Values.kafka.tls.existingSecret }}
  - name: kafka-tls
    secret:
      secretName: {{ .Values.kafka.tls.existingSecret }}
  {{- end }}
  {{- include "streamlearn.httpTlsVolume" . }}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* The HTTPS certificate's Secret as a volume: group-readable (the pods' fsGroup), not
     others' (the servers refuse a key file others may read). */}}
{{- define "streamlearn.httpTlsVolume" -}}
{{- if .Values.httpTls.existingSecret }}
  - name: http-tls
    secret:
      secretName: {{ .Values.httpTls.existingSecret }}
      defaultMode: 0440
{{- end }}
{{- end -}}

{{/* The placement of the one-off pods (hook Jobs, the test pod): jobs.*. */}}
{{- define "streamlearn.jobPlacement" -}}
{{- with .Values.jobs.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.jobs.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.jobs.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every part: service account, security, placement, spread. */}}
{{- define "streamlearn.podSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "streamlearn.serviceAccountName" $root }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
topologySpreadConstraints:
{{- if kindIs "slice" .part.topologySpreadConstraints }}
  {{- toYaml .part.topologySpreadConstraints | nindent 2 }}
{{- else }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "streamlearn.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "streamlearn.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{/* A streamlearn container: image, command, security, environment, writable mounts. */}}
{{- define "streamlearn.container" -}}
{{- $root := .root -}}
name: {{ .component }}
image: {{ include "streamlearn.image" $root }}
imagePullPolicy: {{ $root.Values.image.pullPolicy }}
command: ["streamlearn"]
args:
  {{- toYaml .args | nindent 2 }}
securityContext:
  {{- toYaml $root.Values.containerSecurityContext | nindent 2 }}
{{ include "streamlearn.env" (dict "root" $root "component" .component "agents" .agents "extraEnv" .extraEnv) }}
{{ include "streamlearn.volumeMounts" $root }}
{{- with .archiveMount }}
  - name: archive
    mountPath: {{ . }}
{{- end }}
{{- end -}}

{{/* Probes on an HTTP port: ready when /readyz says so, restarted when /healthz fails. */}}
{{- define "streamlearn.probes" -}}
{{- $scheme := ternary ", scheme: HTTPS" "" (eq (.scheme | default "http") "https") }}
startupProbe:
  httpGet: {path: /healthz, port: {{ .port }}{{ $scheme }}}
  periodSeconds: 2
  {{- /* 180 s to start, plus what the part waits before it opens its port (.waitS). */}}
  failureThreshold: {{ add 90 (divf (.waitS | default 0) 2 | ceil) }}
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}{{ $scheme }}}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: {{ .ready | default "/readyz" }}, port: {{ .port }}{{ $scheme }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* A PodDisruptionBudget for a part with more than one replica. */}}
{{- define "streamlearn.pdb" -}}
{{- if and .budget.enabled (gt (int .replicas) 1) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "streamlearn.fullname" .root }}-{{ .component }}
  labels:
    {{- include "streamlearn.labels" . | nindent 4 }}
spec:
  minAvailable: {{ .budget.minAvailable }}
  selector:
    matchLabels:
      {{- include "streamlearn.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* The ConfigMap's data (also hashed into each pod's annotations). */}}
{{- define "streamlearn.configData" -}}
STREAMLEARN_KAFKA_BOOTSTRAP: {{ .Values.kafka.bootstrapServers | quote }}
STREAMLEARN_KAFKA_SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | quote }}
{{- if include "streamlearn.needsSasl" . }}
STREAMLEARN_KAFKA_SASL_MECHANISM: {{ required "kafka.sasl.mechanism is required with SASL" .Values.kafka.sasl.mechanism | quote }}
{{- if include "streamlearn.sharedKafkaUser" . }}
STREAMLEARN_KAFKA_SASL_USERNAME: {{ required "kafka.sasl.username is required with SASL (or a user per part under kafka.sasl.users)" .Values.kafka.sasl.username | quote }}
{{- end }}
{{- end }}
{{- if and (include "streamlearn.needsTls" .) .Values.kafka.tls.existingSecret }}
{{- /* No caKey: the system's CAs (mutual TLS against a publicly signed broker); the
     directory itself was given as the CA file. */}}
{{- if .Values.kafka.tls.caKey }}
STREAMLEARN_KAFKA_SSL_CAFILE: {{ printf "/etc/streamlearn/kafka-tls/%s" .Values.kafka.tls.caKey | quote }}
{{- end }}
{{- if .Values.kafka.tls.certKey }}
STREAMLEARN_KAFKA_SSL_CERTFILE: {{ printf "/etc/streamlearn/kafka-tls/%s" .Values.kafka.tls.certKey | quote }}
{{- /* Without keyKey the key is in the certificate's file. */}}
{{- if .Values.kafka.tls.keyKey }}
STREAMLEARN_KAFKA_SSL_KEYFILE: {{ printf "/etc/streamlearn/kafka-tls/%s" .Values.kafka.tls.keyKey | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.kafka.topicReplicationFactor }}
STREAMLEARN_TOPIC_REPLICATION_FACTOR: {{ . | toJson | quote }}
{{- end }}
STREAMLEARN_SCHEMA_REGISTRY_URL: {{ include "streamlearn.registryUrl" . | quote }}
{{- with .Values.httpTls }}
{{- if .existingSecret }}
STREAMLEARN_HTTP_TLS_CERTFILE: {{ printf "/etc/streamlearn/http-tls/%s" .certKey | quote }}
{{- if .keyKey }}
STREAMLEARN_HTTP_TLS_KEYFILE: {{ printf "/etc/streamlearn/http-tls/%s" .keyKey | quote }}
{{- end }}
{{- if .caKey }}
STREAMLEARN_HTTP_TLS_CAFILE: {{ printf "/etc/streamlearn/http-tls/%s" .caKey | quote }}
{{- end }}
{{- end }}
{{- end }}
STREAMLEARN_TOPIC_PREFIX: {{ .Values.topics.prefix | quote }}
{{- with .Values.signing.keyId }}
STREAMLEARN_MODEL_SIGNING_KEY_ID: {{ . | quote }}
{{- end }}
STREAMLEARN_LOG_LEVEL: {{ .Values.logLevel | quote }}
STREAMLEARN_DATA_DIR: "/data"
STREAMLEARN_CACHE_DIR: "/tmp/cache"
{{- range $name, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
{{ printf "STREAMLEARN_%s" (upper $name) }}: {{ if kindIs "string" $value }}{{ $value | quote }}{{ else }}{{ toJson $value | quote }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod annotations that roll the pods when their configuration changes. The secret values'
     hash is salted with the signing key (given, or read from the cluster): a plain hash of
     a token in a pod's annotations can be checked against guesses by anyone who may read
     pods. Without a key to salt with (`helm template`, or the install that generates the
     key) the annotation says so, and a change of secretConfig.values needs a restart. */}}
{{- define "streamlearn.configChecksum" -}}
checksum/config: {{ include "streamlearn.configData" . | sha256sum }}
{{- /* Every secret the chart keeps in its own Secret, not secretConfig alone: a new signing
     key, SASL password or pseudonymisation key left the running pods on the old one. */}}
{{- $given := dict "secretConfig" .Values.secretConfig "signingKey" (.Values.signing.key | default "") "saslPassword" (.Values.kafka.sasl.password | default "") "pseudonymisationKey" (.Values.pseudonymisation.key | default "") }}
{{- if or .Values.secretConfig.values .Values.signing.key .Values.kafka.sasl.password .Values.pseudonymisation.key }}
{{- $salt := include "streamlearn.secretSalt" . }}
checksum/secret-config: {{ if $salt }}{{ printf "%s\n%s" $salt (toJson $given) | sha256sum }}{{ else }}{{ "no key to salt the secrets' hash with: restart the parts after changing a secret" | quote }}{{ end }}
{{- else }}
checksum/secret-config: {{ toJson .Values.secretConfig | sha256sum }}
{{- end }}
{{- end -}}

{{/* The signing key, as a salt: from the values, else from the cluster (the release's Secrets,
     or signing.existingSecret); empty when none can be read. */}}
{{- define "streamlearn.secretSalt" -}}
{{- if .Values.signing.key -}}
{{- .Values.signing.key -}}
{{- else -}}
{{- $names := list (include "streamlearn.settingsName" .) (include "streamlearn.secretName" .) -}}
{{- with .Values.signing.existingSecret }}{{ $names = list . }}{{ end -}}
{{- $salt := "" -}}
{{- range $name := $names -}}
{{- $secret := lookup "v1" "Secret" $.Release.Namespace $name -}}
{{- if and (not $salt) $secret -}}
{{- $salt = index ($secret.data | default dict) $.Values.signing.existingSecretKey | default "" -}}
{{- end -}}
{{- end -}}
{{- $salt -}}
{{- end -}}
{{- end -}}

{{/* What the values schema cannot say across values, refused as the parts would at start. */}}
{{- define "streamlearn.validate" -}}
{{- /* The longest Service name is <fullname>-collector: a longer one rendered and was refused
     by the API server at install. */}}
{{- $fullname := include "streamlearn.fullname" . }}
{{- if gt (len $fullname) 53 }}
{{- fail (printf "the release's Service names (%s-collector, ...) would be %d characters; Service names are at most 63 characters: use a release name of at most %d characters, or fullnameOverride (at most 53)" $fullname (add (len $fullname) 10) (sub 52 (len (include "streamlearn.name" .)))) }}
{{- end }}
{{- /* Helm takes release names Services cannot have (dots, a digit first), and the
     overrides are free text: Kubernetes refused them at install. */}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) }}
{{- fail (printf "%s-collector (and the release's other Services) is not a Service name Kubernetes takes: lower-case letters, digits and '-', a letter first; use another release name, or fullnameOverride" $fullname) }}
{{- end }}
{{- /* `helm test` asks a worker for this model: one it does not serve answers 404. */}}
{{- $models := .Values.config.models | default (list "ctr") }}
{{- if not (has .Values.tests.model $models) }}
{{- fail (printf "tests.model %s is not among config.models (%s): `helm test` would ask the workers for a model they do not serve" .Values.tests.model (join ", " $models)) }}
{{- end }}
{{- if and (eq (toString (default "drop" .Values.config.ip_policy)) "pseudonymise") (not (or .Values.pseudonymisation.key .Values.pseudonymisation.existingSecret)) }}
{{- fail "config.ip_policy=pseudonymise needs pseudonymisation.key or pseudonymisation.existingSecret (preprocess would refuse to start)" }}
{{- end }}
{{- /* A secret given inline and as an existing Secret: the existing Secret was used and the
     inline one stored nowhere, without a word. */}}
{{- range $pair := list (list "signing.key" .Values.signing.key "signing.existingSecret" .Values.signing.existingSecret) (list "pseudonymisation.key" .Values.pseudonymisation.key "pseudonymisation.existingSecret" .Values.pseudonymisation.existingSecret) (list "kafka.sasl.password" .Values.kafka.sasl.password "kafka.sasl.existingSecret" .Values.kafka.sasl.existingSecret) }}
{{- if and (index $pair 1) (index $pair 3) }}
{{- fail (printf "%s and %s are both given: give the secret one way, not both (the release would use %s and ignore %s)" (index $pair 0) (index $pair 2) (index $pair 2) (index $pair 0)) }}
{{- end }}
{{- end }}
{{- /* Credentials the security protocol leaves unused: the SASL_SSL example with the
     protocol left at PLAINTEXT rendered, and every part spoke plain Kafka to the brokers'
     SASL_SSL port, failing at its first connection with nothing naming the cause. */}}
{{- $protocol := .Values.kafka.securityProtocol }}
{{- with .Values.kafka.sasl }}
{{- if and (not (include "streamlearn.needsSasl" $)) (or .mechanism .username .password .existingSecret .users) }}
{{- fail (printf "kafka.sasl is given but kafka.securityProtocol is %s, which logs in with no SASL user: set kafka.securityProtocol to SASL_SSL (or SASL_PLAINTEXT), or remove kafka.sasl" $protocol) }}
{{- end }}
{{- end }}
{{- if and (not (include "streamlearn.needsTls" .)) .Values.kafka.tls.existingSecret }}
{{- fail (printf "kafka.tls.existingSecret is given but kafka.securityProtocol is %s, which speaks no TLS to the brokers: set kafka.securityProtocol to SSL or SASL_SSL, or remove kafka.tls.existingSecret" $protocol) }}
{{- end }}
{{- if and .Values.httpTls.existingSecret (or .Values.config.http_tls_certfile .Values.config.http_tls_keyfile .Values.config.http_tls_cafile) }}
{{- fail "give the HTTPS certificate either as httpTls.existingSecret or as config.http_tls_* files, not both" }}
{{- end }}
{{- with .Values.serve.autoscaling }}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) }}
{{- fail (printf "serve.autoscaling: minReplicas %d is more than maxReplicas %d" (int .minReplicas) (int .maxReplicas)) }}
{{- end }}
{{- end }}
{{- /* A user for a part the release does not have (a typo) would leave the part logging in
     as the shared user without a word. */}}
{{- /* Only the parts this release runs: a user for a disabled set, for the registry of a
     release using an external one or for the hooks of one running none went unused. */}}
{{- $known := fromYamlArray (include "streamlearn.kafkaParts" .) }}
{{- range $part, $_ := .Values.kafka.sasl.users | default dict }}
{{- if not (has $part $known) }}
{{- fail (printf "kafka.sasl.users.%s: this release runs no such part; its parts are %s (ops: the hooks; the others: collector, serve, registry, the enabled agent sets and archive when archive.enabled)" $part (join ", " $known)) }}
{{- end }}
{{- end }}
{{- include "streamlearn.validateArchive" . }}
{{- /* Each agent in one enabled set: helm merges a new set into the default ones, and two
     sets (two consumer groups) would each process the agent's input, every output twice. */}}
{{- $setOf := dict }}
{{- range $set, $spec := .Values.agents.sets }}
{{- if ne $spec.enabled false }}
{{- if and (has "monitor" $spec.agents) (gt (len $spec.agents) 1) }}
{{- fail (printf "agents.sets.%s: monitor runs in a set of its own (it reads the other agents' input topics)" $set) }}
{{- end }}
{{- range $agent := $spec.agents }}
{{- if hasKey $setOf $agent }}
{{- $other := get $setOf $agent }}
{{- $drop := ternary $set $other (eq $set $agent) }}
{{- fail (printf "agents.sets: %s is in set %s and in set %s: two consumer groups would each process its input, every output twice; disable one (--set agents.sets.%s.enabled=false)" $agent $other $set $drop) }}
{{- end }}
{{- $_ := set $setOf $agent $set }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* How long a starting worker may wait before it opens its port: config's, else the
     setting's default (STREAMLEARN_SERVE_STARTUP_WAIT_S, 30 s). */}}
{{- define "streamlearn.serveStartupWaitS" -}}
{{- $wait := .Values.config.serve_startup_wait_s -}}
{{- if kindIs "invalid" $wait -}}30{{- else -}}{{ $wait }}{{- end -}}
{{- end -}}

{{/* The archive's file options that the schema cannot check alone: a codec of the chosen
     format (the lists of streamlearn.archive.formats.CODECS, which archive run would refuse
     otherwise, in a crash loop), and a staging directory the read-only pod can write. */}}
{{- define "streamlearn.validateArchiveFiles" -}}
{{- with .Values.archive }}
{{- $codecs := dict "avro" (list "null" "deflate" "snappy" "zstandard" "lz4" "bzip2" "xz") "parquet" (list "none" "snappy" "gzip" "brotli" "lz4" "zstd") }}
{{- $known := get $codecs .format }}
{{- if and .compression (not (has .compression $known)) }}
{{- fail (printf "archive.compression %s: not a codec of %s files; one of: %s" .compression .format (join ", " $known)) }}
{{- end }}
{{- with .stagingDir }}
{{- if not (hasPrefix "s3://" $.Values.archive.root) }}
{{- fail (printf "archive.stagingDir %s is given but archive.root %s is local: files are written in the root itself, the staging directory would go unused; remove it" . $.Values.archive.root) }}
{{- end }}
{{- if not (hasPrefix "/" .) }}
{{- fail (printf "archive.stagingDir %s: an absolute path under /data, /tmp or an extraVolumeMounts path" .) }}
{{- end }}
{{- $writable := list "/data" "/tmp" }}
{{- range $.Values.extraVolumeMounts }}{{ if not .readOnly }}{{ $writable = append $writable (trimSuffix "/" .mountPath) }}{{ end }}{{ end }}
{{- $dir := . }}
{{- $inside := false }}
{{- range $writable }}{{ if or (eq $dir .) (hasPrefix (printf "%s/" .) $dir) }}{{ $inside = true }}{{ end }}{{ end }}
{{- if not $inside }}
{{- fail (printf "archive.stagingDir %s: the pod writes only under /data, /tmp and extraVolumeMounts (its root filesystem is read-only); use a path under one of %s" . (join ", " $writable)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The archive's values (archive.*), when it runs. Its files are the only copy of what
     Kafka's retention has dropped: a root that would lose them with the pod is refused. */}}
{{- define "streamlearn.validateArchive" -}}
{{- with .Values.archive }}
{{- if .enabled }}
{{- $claim := .persistence.existingClaim }}
{{- if not .root }}
{{- fail "archive.root is required when archive.enabled is true: s3://bucket/prefix, or a local path with archive.persistence.existingClaim" }}
{{- else if hasPrefix "s3://" .root }}
{{- if not (regexMatch "^s3://[^/]+(/.*)?$" .root) }}
{{- fail (printf "archive.root %s: s3://bucket/prefix names a bucket" .root) }}
{{- end }}
{{- if $claim }}
{{- fail (printf "archive.persistence.existingClaim %s is given but archive.root %s is in object storage: the claim would go unused; remove it, or give a local root" $claim .root) }}
{{- end }}
{{- else if not (hasPrefix "/" .root) }}
{{- fail (printf "archive.root %s: s3://bucket/prefix, or an absolute local path with archive.persistence.existingClaim (other URLs are refused by archive run)" .root) }}
{{- else if not $claim }}
{{- fail (printf "archive.root %s is a local path but archive.persistence.existingClaim is not given: the path would be on the pod's own disk and the archive lost with the pod; give a PersistentVolumeClaim of yours (mounted at %s), or an s3:// root" .root .root) }}
{{- else if has (trimSuffix "/" .root) (list "" "/tmp" "/data") }}
{{- fail (printf "archive.root %s: the claim cannot be mounted at / , /tmp or /data (the pod's own writable places); use a path of its own, e.g. /archive" .root) }}
{{- end }}
{{- include "streamlearn.validateArchiveFiles" $ }}
{{- with .s3.existingSecret }}
{{- if not (and $.Values.archive.s3.accessKeyIdKey $.Values.archive.s3.secretAccessKeyKey) }}
{{- fail "archive.s3.existingSecret needs archive.s3.accessKeyIdKey and archive.s3.secretAccessKeyKey (the keys of the access key id and secret in it)" }}
{{- end }}
{{- end }}
{{- with $.Values.config.archive_root }}
{{- if ne . $.Values.archive.root }}
{{- fail (printf "config.archive_root %s differs from archive.root %s: the archive would write to one and replays read the other; leave config.archive_root out (or give it the same value)" . $.Values.archive.root) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
