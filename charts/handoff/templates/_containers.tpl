{{/*
The geo service's, the worker's and the sweeper's containers, the same in the
geo StatefulSet (store.kind volume: all three in each geo pod, beside their
volume) and in the Deployments of an object store (each on its own). With a
volume they mount it and are named as their pod (HANDOFF_REPLICA); with an
object store they get the store's SDK configuration instead.
*/}}

{{/* What a store process needs to find the store: the volume's pod name, or the SDK's settings. */}}
{{- define "handoff.storeAccessEnv" -}}
{{- if include "handoff.objectStore" . }}
{{- include "handoff.storeEnv" . }}
{{- else }}
{{- include "handoff.replicaEnv" . }}
{{- end }}
{{- end }}

{{- define "handoff.uploadsMount" -}}
{{- if not (include "handoff.objectStore" .) }}
- name: uploads
  mountPath: {{ include "handoff.uploadsRoot" . }}
{{- end }}
{{- end }}

{{- define "handoff.geoContainer" -}}
{{- $graceful := include "handoff.gracefulTimeout" (dict "grace" .Values.geo.terminationGracePeriodSeconds "preStop" .Values.geo.preStopSleepSeconds) }}
- name: geo
  image: {{ include "handoff.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  # args, not command: the image's tini entrypoint stays PID 1.
  args:
    - gunicorn
    - --config
    - python:handoff.server.gunicorn_conf
    - --bind
    - 0.0.0.0:8001
    - geo_service.app:create_app()
  ports:
    - name: http
      containerPort: 8001
      protocol: TCP
    # The gunicorn master answers the probes here, however busy its workers are.
    - name: health
      containerPort: 8080
      protocol: TCP
  envFrom:
    {{- include "handoff.envFrom" . | nindent 4 }}
  env:
    - name: GUNICORN_CMD_ARGS
      value: {{ printf "--graceful-timeout %s" $graceful | quote }}
    - name: HANDOFF_HEALTH_PORT
      value: "8080"
    {{- with (include "handoff.storeAccessEnv" .) }}
    {{- . | trim | nindent 4 }}
    {{- end }}
    {{- include "handoff.geoSecretEnv" . | nindent 4 }}
    {{- with (include "handoff.redisUrlEnv" .) }}
    {{- . | trim | nindent 4 }}
    {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: health
    {{- toYaml .Values.geo.livenessProbe | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: health
    {{- toYaml .Values.geo.readinessProbe | nindent 4 }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", "{{ .Values.geo.preStopSleepSeconds }}"]
  securityContext:
    {{- include "handoff.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml .Values.geo.resources | nindent 4 }}
  volumeMounts:
    {{- with (include "handoff.uploadsMount" .) }}
    {{- . | trim | nindent 4 }}
    {{- end }}
    - name: tmp-geo
      mountPath: /tmp
{{- end }}

{{/*
The worker; call with (dict "ctx" $ "graceful" <seconds a job gets to finish>).
Beside a volume it takes its own pod's queue; with an object store every
worker takes the one queue.
*/}}
{{- define "handoff.workerContainer" -}}
{{- $objects := include "handoff.objectStore" .ctx }}
{{- with .ctx }}
- name: worker
  image: {{ include "handoff.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - dramatiq
    - geo_service.worker
    - --processes
    - {{ .Values.worker.processes | quote }}
    - --threads
    - {{ .Values.worker.threads | quote }}
    # Let a job in progress finish within the pod's grace period.
    - --worker-shutdown-timeout
    - {{ mul (int $.graceful) 1000 | quote }}
    # The jobs (with a volume: this replica's, Kubernetes expanding
    # $(HANDOFF_REPLICA) from the env below), and the webhook deliveries with
    # their own retries (any worker may send those).
    - --queues
    {{- if $objects }}
    - {{ .Values.config.queue | quote }}
    {{- else }}
    - {{ printf "%s.$(HANDOFF_REPLICA)" .Values.config.queue | quote }}
    {{- end }}
    - {{ .Values.hooks.webhook.queue | quote }}
  envFrom:
    {{- include "handoff.envFrom" . | nindent 4 }}
  env:
    - name: HANDOFF_PROBE_MAX_AGE
      value: {{ .Values.worker.probe.maxAgeSeconds | quote }}
    {{- if $objects }}
    - name: HANDOFF_SCRATCH_DIR
      value: {{ include "handoff.scratchDir" . | quote }}
    - name: HANDOFF_SCRATCH_LIMIT
      value: {{ include "handoff.scratchLimit" . | quote }}
    {{- end }}
    {{- with (include "handoff.storeAccessEnv" .) }}
    {{- . | trim | nindent 4 }}
    {{- end }}
    {{- with (include "handoff.webhookSecretEnv" .) }}
    {{- . | trim | nindent 4 }}
    {{- end }}
    {{- with (include "handoff.redisUrlEnv" .) }}
    {{- . | trim | nindent 4 }}
    {{- end }}
  livenessProbe:
    exec:
      command: ["python", "-m", "handoff.server.probe", "worker"]
    {{- omit .Values.worker.probe "maxAgeSeconds" | toYaml | nindent 4 }}
  readinessProbe:
    exec:
      command: ["python", "-m", "handoff.server.probe", "worker"]
    {{- omit .Values.worker.probe "maxAgeSeconds" | toYaml | nindent 4 }}
  securityContext:
    {{- include "handoff.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml .Values.worker.resources | nindent 4 }}
  volumeMounts:
    {{- with (include "handoff.uploadsMount" .) }}
    {{- . | trim | nindent 4 }}
    {{- end }}
    {{- if $objects }}
    - name: scratch
      mountPath: {{ include "handoff.scratchDir" . }}
    {{- end }}
    - name: tmp-worker
      mountPath: /tmp
{{- end }}
{{- end }}

{{/* The long-lived sweeper (gc.mode scheduler). */}}
{{- define "handoff.gcContainer" -}}
- name: gc
  image: {{ include "handoff.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - handoff-gc
  envFrom:
    {{- include "handoff.envFrom" . | nindent 4 }}
  env:
    - name: HANDOFF_PROBE_MAX_AGE
      value: {{ .Values.gc.probe.maxAgeSeconds | quote }}
    {{- with (include "handoff.storeAccessEnv" .) }}
    {{- . | trim | nindent 4 }}
    {{- end }}
    {{- with (include "handoff.redisUrlEnv" .) }}
    {{- . | trim | nindent 4 }}
    {{- end }}
  livenessProbe:
    exec:
      command: ["python", "-m", "handoff.server.probe", "gc"]
    {{- omit .Values.gc.probe "maxAgeSeconds" | toYaml | nindent 4 }}
  readinessProbe:
    exec:
      command: ["python", "-m", "handoff.server.probe", "gc"]
    {{- omit .Values.gc.probe "maxAgeSeconds" | toYaml | nindent 4 }}
  securityContext:
    {{- include "handoff.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml .Values.gc.resources | nindent 4 }}
  volumeMounts:
    {{- with (include "handoff.uploadsMount" .) }}
    {{- . | trim | nindent 4 }}
    {{- end }}
    - name: tmp-gc
      mountPath: /tmp
{{- end }}

{{/* Pod spec fields every handoff pod shares: identity, hardening, pull secrets. */}}
{{- define "handoff.podCommon" -}}
serviceAccountName: {{ include "handoff.serviceAccountName" . }}
automountServiceAccountToken: false
# Service links would inject variables such as HANDOFF_GEO_PORT=tcp://...
# that collide with the HANDOFF_* settings.
enableServiceLinks: false
securityContext:
  {{- include "handoff.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
