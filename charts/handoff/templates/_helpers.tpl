{{/* Chart name, overridable. */}}
{{- define "handoff.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Base name for every object. Kept at most 40 characters so that the longest
derived name (the uploads claim "uploads-<fullname>-geo-0") stays a valid
DNS label.
*/}}
{{- define "handoff.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "handoff.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object; call with (dict "ctx" $ "component" "api"). */}}
{{- define "handoff.labels" -}}
helm.sh/chart: {{ include "handoff.chart" .ctx }}
{{ include "handoff.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: handoff
{{- end }}

{{/* Labels that select one component's pods; call like handoff.labels. */}}
{{- define "handoff.selectorLabels" -}}
app.kubernetes.io/name: {{ include "handoff.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "handoff.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "handoff.configMapName" -}}
{{- printf "%s-config" (include "handoff.fullname" .) }}
{{- end }}

{{- define "handoff.secretName" -}}
{{- default (printf "%s-secrets" (include "handoff.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "handoff.geoName" -}}
{{- printf "%s-geo" (include "handoff.fullname" .) }}
{{- end }}

{{- define "handoff.redisName" -}}
{{- printf "%s-redis" (include "handoff.fullname" .) }}
{{- end }}

{{/* The claim the StatefulSet creates for its first pod, the only one the CronJob sweeps. */}}
{{- define "handoff.uploadsClaimName" -}}
{{- printf "uploads-%s-0" (include "handoff.geoName" .) }}
{{- end }}

{{/*
HANDOFF_GEO_REPLICA_URLS: name=url of every geo pod, named as the pod is
(HANDOFF_REPLICA), at its stable per-pod name in the headless Service. The
short form resolves through the namespace's DNS search path, as the API's
other addresses do, without knowing the cluster domain.
*/}}
{{- define "handoff.geoReplicaUrls" -}}
{{- $geo := include "handoff.geoName" . }}
{{- $urls := list }}
{{- range $ordinal := until (int .Values.geo.replicas) }}
{{- $pod := printf "%s-%d" $geo $ordinal }}
{{- $urls = append $urls (printf "%s=http://%s.%s:8001" $pod $pod $geo) }}
{{- end }}
{{- join "," $urls }}
{{- end }}

{{/* HANDOFF_GEO_DRAINING: the pod names of geo.draining's ordinals. */}}
{{- define "handoff.geoDraining" -}}
{{- $geo := include "handoff.geoName" . }}
{{- $names := list }}
{{- range $ordinal := .Values.geo.draining }}
{{- if ge (int $ordinal) (int $.Values.geo.replicas) }}
{{- fail (printf "geo.draining lists %d, but geo.replicas is %d (ordinals 0 to %d)" (int $ordinal) (int $.Values.geo.replicas) (sub (int $.Values.geo.replicas) 1)) }}
{{- end }}
{{- $names = append $names (printf "%s-%d" $geo (int $ordinal)) }}
{{- end }}
{{- join "," $names }}
{{- end }}

{{/* HANDOFF_REPLICA of a geo pod's containers: the pod's own name. */}}
{{- define "handoff.replicaEnv" -}}
- name: HANDOFF_REPLICA
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}

{{- define "handoff.uploadsRoot" -}}
/var/lib/handoff/uploads
{{- end }}

{{/* Pod-level security context shared by every workload. */}}
{{- define "handoff.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
# Volumes may hold tens of gigabytes: change ownership only when the root
# does not match, never walk every file on each start.
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level security context shared by every container. */}}
{{- define "handoff.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The writable /tmp every container gets; call with (dict "ctx" $ "name" "tmp"). */}}
{{- define "handoff.tmpVolume" -}}
- name: {{ .name }}
  emptyDir:
    sizeLimit: {{ .ctx.Values.tmpSizeLimit }}
{{- end }}

{{/* Environment shared by the handoff containers: the ConfigMap. */}}
{{- define "handoff.envFrom" -}}
- configMapRef:
    name: {{ include "handoff.configMapName" . }}
{{- end }}

{{/* HANDOFF_REDIS_URL when it comes from a Secret (external Redis). */}}
{{- define "handoff.redisUrlEnv" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret }}
- name: HANDOFF_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalRedis.existingSecret }}
      key: {{ .Values.externalRedis.existingSecretKey }}
{{- end }}
{{- end }}

{{- define "handoff.geoSecretEnv" -}}
- name: HANDOFF_GEO_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "handoff.secretName" . }}
      key: {{ .Values.secrets.geoSecretKey }}
{{- end }}

{{/* Only the worker signs webhooks, so only it gets the secret, and only when they are on. */}}
{{- define "handoff.webhookSecretEnv" -}}
{{- if .Values.hooks.webhook.url }}
- name: HANDOFF_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "handoff.secretName" . }}
      key: {{ .Values.secrets.webhookSecretKey }}
{{- end }}
{{- end }}

{{- define "handoff.apiTokensEnv" -}}
{{- if .Values.secrets.apiTokensAsFile }}
- name: HANDOFF_API_TOKENS_FILE
  value: /etc/handoff/secrets/api-tokens
{{- else }}
- name: HANDOFF_API_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ include "handoff.secretName" . }}
      key: {{ .Values.secrets.apiTokensKey }}
{{- end }}
{{- end }}

{{/*
gunicorn's graceful timeout: what is left of the termination grace period
after the preStop pause, less a margin for the arbiter to exit.
Call with (dict "grace" <seconds> "preStop" <seconds>).
*/}}
{{- define "handoff.gracefulTimeout" -}}
{{- $timeout := sub (sub (int .grace) (int .preStop)) 15 }}
{{- if lt $timeout 1 }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds (%d) by more than 15 seconds" (int .grace) (int .preStop)) }}
{{- end }}
{{- $timeout }}
{{- end }}

{{- define "handoff.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s:6379/0" (include "handoff.redisName" .) }}
{{- else }}
{{- .Values.externalRedis.url }}
{{- end }}
{{- end }}

{{/* Seconds in a duration the schema admits: a number, then ms, s, m, h, d or nothing (s). */}}
{{- define "handoff.seconds" -}}
{{- $unit := regexFind "(ms|s|m|h|d)$" . }}
{{- $factor := get (dict "" 1.0 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0) $unit }}
{{- mulf (float64 (trimSuffix $unit .)) $factor }}
{{- end }}

{{/*
The webhook backoffs the worker checks at start-up (handoff/config.py), which
no schema can compare: the longest under 7d (Dramatiq's longest delay), the
shortest not above it. Refused here, so the install fails, not the pods.
*/}}
{{- define "handoff.checkWebhookBackoff" -}}
{{- $min := include "handoff.seconds" .minBackoff | float64 }}
{{- $max := include "handoff.seconds" .maxBackoff | float64 }}
{{- if ge $max 604800.0 }}
{{- fail "hooks.webhook.maxBackoff must be less than 7d: Dramatiq cannot delay a message longer" }}
{{- end }}
{{- if gt $min $max }}
{{- fail "hooks.webhook.minBackoff is more than hooks.webhook.maxBackoff" }}
{{- end }}
{{- end }}

{{/* "true" when the uploads are in a bucket or container every pod reaches (store.kind s3 or azure). */}}
{{- define "handoff.objectStore" -}}
{{- if ne .Values.store.kind "volume" }}true{{ end }}
{{- end }}

{{- define "handoff.workerName" -}}
{{- printf "%s-worker" (include "handoff.fullname" .) }}
{{- end }}

{{- define "handoff.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "handoff.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Pod labels a store's workload identity needs (Azure Workload Identity's webhook looks for this one). */}}
{{- define "handoff.identityLabels" -}}
{{- if and (eq .Values.store.kind "azure") .Values.store.azure.clientId }}
azure.workload.identity/use: "true"
{{- end }}
{{- end }}

{{/*
The store's SDK configuration for the pods that reach it (geo, worker,
sweeper): the standard variables of boto3 or azure-storage-blob, secrets only
through secretKeyRef. HANDOFF_STORE_URL itself is in the ConfigMap.
*/}}
{{- define "handoff.storeEnv" -}}
{{- if eq .Values.store.kind "s3" }}
{{- with .Values.store.s3 }}
{{- if .endpoint }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ .endpoint | quote }}
{{- end }}
{{- if .region }}
- name: AWS_REGION
  value: {{ .region | quote }}
{{- end }}
{{- if .existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .secretAccessKeyKey }}
{{- end }}
{{- end }}
{{- else if eq .Values.store.kind "azure" }}
{{- with .Values.store.azure }}
{{- if .existingSecret }}
- name: AZURE_STORAGE_CONNECTION_STRING
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .connectionStringKey }}
{{- else }}
- name: AZURE_STORAGE_ACCOUNT
  value: {{ .account | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The port of an http(s):// URL: its own, else the scheme's. */}}
{{- define "handoff.urlPort" -}}
{{- $port := regexFind ":[0-9]+$" (regexReplaceAll "^[a-z]+://([^/?#]*).*$" . "${1}") | trimPrefix ":" }}
{{- if $port }}{{ $port }}{{ else if hasPrefix "http://" . }}80{{ else }}443{{ end }}
{{- end }}

{{/* The port the store is reached on: the S3 endpoint's own, else HTTPS. */}}
{{- define "handoff.storePort" -}}
{{- if and (eq .Values.store.kind "s3") .Values.store.s3.endpoint }}
{{- include "handoff.urlPort" .Values.store.s3.endpoint }}
{{- else }}443{{ end }}
{{- end }}

{{/* The port of the external Redis, when its URL is known here; 6379 otherwise. */}}
{{- define "handoff.redisPort" -}}
{{- $port := regexFind ":[0-9]+$" (regexReplaceAll "^[a-z]+://([^/?#]*).*$" .Values.externalRedis.url "${1}") | trimPrefix ":" }}
{{- default "6379" $port }}
{{- end }}

{{/* HANDOFF_SCRATCH_LIMIT: the scratch emptyDir's sizeLimit in the config's spelling (20Gi is 20GiB). */}}
{{- define "handoff.scratchLimit" -}}
{{- printf "%sB" .Values.worker.scratch.sizeLimit }}
{{- end }}

{{- define "handoff.scratchDir" -}}
/var/lib/handoff/scratch
{{- end }}
