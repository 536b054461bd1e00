{{/* Names and labels. */}}
{{- define "flotilla.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 40 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "flotilla.name" -}}{{ include "flotilla.fullname" (index . 0) }}-{{ index . 1 }}{{- end -}}

{{- define "flotilla.labels" -}}
app.kubernetes.io/name: {{ index . 1 }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/part-of: flotilla
app.kubernetes.io/version: {{ (index . 0).Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ (index . 0).Release.Service }}
helm.sh/chart: {{ printf "%s-%s" (index . 0).Chart.Name (index . 0).Chart.Version }}
{{- end -}}

{{- define "flotilla.selector" -}}
app.kubernetes.io/name: {{ index . 1 }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
{{- end -}}

{{/* http://<release>-<component>:<port> */}}
{{- define "flotilla.url" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
http://{{ include "flotilla.name" (list $root $name) }}:{{ include "flotilla.port" (list $root $name) }}
{{- end -}}

{{- define "flotilla.image" -}}
{{- $root := index . 0 -}}
{{ $root.Values.image.registry }}/flotilla-{{ index . 1 }}:{{ $root.Values.image.tag }}
{{- end -}}

{{/* The Secret a component setting reads: auth, database or broker (or its existingSecret). */}}
{{- define "flotilla.secretName" -}}
{{- $root := index . 0 -}}{{- $which := index . 1 -}}
{{- if and (eq $which "auth") $root.Values.auth.existingSecret -}}{{ $root.Values.auth.existingSecret }}
{{- else if and (eq $which "database") $root.Values.postgresql.existingSecret -}}{{ $root.Values.postgresql.existingSecret }}
{{- else if and (eq $which "broker") $root.Values.broker.existingSecret -}}{{ $root.Values.broker.existingSecret }}
{{- else -}}{{ include "flotilla.name" (list $root $which) }}{{- end -}}
{{- end -}}

{{/* The edge's rate limit lives in Redis even when the broker is RabbitMQ. */}}
{{- define "flotilla.redisUrlForEdge" -}}
{{- if and (eq .Values.broker.kind "redis") .Values.broker.externalUrl -}}{{ .Values.broker.externalUrl }}
{{- else -}}redis://{{ include "flotilla.name" (list . "redis") }}:{{ include "flotilla.port" (list . "redis") }}/1{{- end -}}
{{- end -}}

{{- define "flotilla.deployRedis" -}}
{{- if or (eq .Values.broker.kind "rabbitmq") (not .Values.broker.externalUrl) }}true{{ end -}}
{{- end -}}

{{- define "flotilla.deployRabbitmq" -}}
{{- if and (eq .Values.broker.kind "rabbitmq") (not .Values.broker.externalUrl) }}true{{ end -}}
{{- end -}}

{{/* RabbitMQ's management API, where the operator reads in-flight messages ("" if none). */}}
{{- define "flotilla.rabbitmqManagementUrl" -}}
{{- if eq .Values.broker.kind "rabbitmq" -}}
{{- if .Values.broker.externalUrl -}}{{ .Values.broker.externalManagementUrl }}
{{- else -}}http://{{ include "flotilla.name" (list . "rabbitmq") }}:{{ .Values.rabbitmq.managementPort }}{{- end -}}
{{- end -}}
{{- end -}}

{{/* Where spans go: the release's collector; else tracing.endpoint; else straight to the
release's console, with its ingest token (flotilla.spanTarget names the pod for policies). */}}
{{- define "flotilla.spanTarget" -}}
{{- if .Values.tracing.collector.enabled -}}otel-collector
{{- else if not .Values.tracing.endpoint -}}console{{- end -}}
{{- end -}}

{{- define "flotilla.otlpEndpoint" -}}
{{- if .Values.tracing.collector.enabled -}}http://{{ include "flotilla.name" (list . "otel-collector") }}:{{ include "flotilla.port" (list . "otel-collector") }}
{{- else if .Values.tracing.endpoint -}}{{ .Values.tracing.endpoint }}
{{- else -}}{{ include "flotilla.url" (list . "console") }}{{- end -}}
{{- end -}}

{{/* The OTLP exporter's env entries: the endpoint, and the console's token when spans go to it. */}}
{{- define "flotilla.otlpEnv" -}}
- {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: {{ include "flotilla.otlpEndpoint" . | quote }}}
- {name: OTEL_LOGS_EXPORTER, value: {{ ternary "otlp" "none" .Values.logs.otlp.enabled | quote }}}
{{- if and .Values.metrics.otlp.enabled .Values.tracing.collector.enabled }}
- {name: OTEL_METRICS_EXPORTER, value: "prometheus,otlp"}
{{- end }}
{{- if eq (include "flotilla.spanTarget" .) "console" }}
- name: CONSOLE_INGEST_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "flotilla.name" (list . "console-ingest") }}, key: token}
- {name: OTEL_EXPORTER_OTLP_HEADERS, value: "Authorization=Bearer%20$(CONSOLE_INGEST_TOKEN)"}
{{- end }}
{{- end -}}

{{/* The restricted Pod Security profile, for every pod and container. */}}
{{- define "flotilla.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "flotilla.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* A NetworkPolicy peer: the pods of one component. */}}
{{- define "flotilla.peer" -}}
- podSelector:
    matchLabels: {{- include "flotilla.selector" . | nindent 6 }}
{{- end -}}

{{/* The port of a URL (list url default). */}}
{{- define "flotilla.urlPort" -}}
{{- $host := (urlParse (index . 0)).host -}}
{{- if contains ":" $host }}{{ last (splitList ":" $host) }}{{ else }}{{ index . 1 }}{{ end -}}
{{- end -}}
