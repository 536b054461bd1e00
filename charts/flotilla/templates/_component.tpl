{{/*
One platform component (flotilla.components: the catalogue's entry with the release's choices):
its Deployment, and when it serves HTTP its Service. Called with (list $ $component).
*/}}
{{- define "flotilla.component" -}}
{{- $root := index . 0 -}}{{- $c := index . 1 -}}
{{- $name := include "flotilla.name" (list $root $c.name) -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels: {{- include "flotilla.labels" (list $root $c.name) | nindent 4 }}
    app.kubernetes.io/component: {{ $c.kind }}
spec:
  {{- if not $c.autoscaling }}
  replicas: {{ get $root.Values.replicaCounts $c.name | default ($c.replicas | default 1) }}
  {{- else }}
  # no replicas here: the WorkerAutoscaler owns them, so `helm upgrade` never undoes it
  {{- end }}
  revisionHistoryLimit: 3
  # one new pod at a time, the old one kept until it is ready: the connection budget
  # (_budget.tpl) counts that one pod of surge
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels: {{- include "flotilla.selector" (list $root $c.name) | nindent 6 }}
  template:
    metadata:
      labels: {{- include "flotilla.labels" (list $root $c.name) | nindent 8 }}
        app.kubernetes.io/component: {{ $c.kind }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ int $c.terminationGracePeriodSeconds }}
      securityContext: {{- include "flotilla.podSecurity" 10001 | nindent 8 }}
      {{- with $c.migrate }}
      # Every pod that needs the schema brings it to head before it starts; replicas starting
      # together take turns on a PostgreSQL advisory lock (flotilla.core.upgrade_database).
      initContainers:
        - name: migrate
          image: {{ include "flotilla.image" (list $root $c.image) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: {{ toJson . }}
          securityContext: {{- include "flotilla.containerSecurity" $root | nindent 12 }}
          env:
            - {name: FLOTILLA_{{ $c.settingsPrefix }}_ENVIRONMENT, value: {{ $root.Values.environment | quote }}}
            - name: FLOTILLA_{{ $c.settingsPrefix }}_DATABASE_URL
              valueFrom:
                secretKeyRef: {name: {{ include "flotilla.secretName" (list $root "database") }}, key: {{ printf "%s-database-url" $c.database }}}
            - {name: OTEL_SDK_DISABLED, value: "true"}
          resources: {{- toYaml $c.resources | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
      {{- end }}
      containers:
        - name: {{ $c.name }}
          image: {{ include "flotilla.image" (list $root $c.image) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: {{ toJson $c.command }}
          securityContext: {{- include "flotilla.containerSecurity" . | nindent 12 }}
          env:
            - {name: FLOTILLA_{{ $c.settingsPrefix }}_ENVIRONMENT, value: {{ $root.Values.environment | quote }}}
            - {name: FLOTILLA_{{ $c.settingsPrefix }}_LOG_LEVEL, value: {{ $root.Values.logLevel | quote }}}
            {{- range $field, $value := $c.settings }}
            - name: FLOTILLA_{{ $c.settingsPrefix }}_{{ upper $field }}
              value: {{ tpl (toString $value) $root | quote }}
            {{- end }}
            {{- range $field, $ref := $c.secretSettings }}
            - name: FLOTILLA_{{ $c.settingsPrefix }}_{{ upper $field }}
              valueFrom:
                secretKeyRef: {name: {{ include "flotilla.secretName" (list $root $ref.secret) }}, key: {{ $ref.key }}}
            {{- end }}
            {{- if and (not $c.adminPort) $c.metrics }}
            - {name: FLOTILLA_{{ $c.settingsPrefix }}_METRICS_PORT, value: {{ $root.Values.metrics.port | quote }}}
            - {name: FLOTILLA_{{ $c.settingsPrefix }}_METRICS_HOST, value: "0.0.0.0"}
            {{- end }}
            - {name: OTEL_SERVICE_NAME, value: {{ $c.name }}}
            - {name: OTEL_RESOURCE_ATTRIBUTES, value: "service.namespace=flotilla,deployment.environment={{ $root.Values.environment }},k8s.namespace.name={{ $root.Release.Namespace }}"}
            {{- if $c.tracingDisabled }}
            - {name: OTEL_SDK_DISABLED, value: "true"}
            {{- else }}
            {{- include "flotilla.otlpEnv" $root | nindent 12 }}
            {{- end }}
          {{- if or $c.port $c.metrics }}
          ports:
            {{- with $c.port }}
            - {name: http, containerPort: {{ int . }}}
            {{- end }}
            {{- with $c.adminPort }}
            - {name: admin, containerPort: {{ int . }}}
            {{- end }}
            {{- if and (not $c.adminPort) $c.metrics }}
            - {name: metrics, containerPort: {{ $root.Values.metrics.port }}}
            {{- end }}
          {{- end }}
          {{- with $c.probes }}
          {{- with .startup }}
          startupProbe:
            {{- include "flotilla.probe" . | nindent 12 }}
            periodSeconds: 2
            failureThreshold: 60
          {{- end }}
          {{- with .readiness }}
          readinessProbe:
            {{- include "flotilla.probe" . | nindent 12 }}
            {{- if .heartbeat }}
            initialDelaySeconds: 10
            periodSeconds: 15
            timeoutSeconds: 10
            {{- else }}
            periodSeconds: 5
            timeoutSeconds: 3
            {{- end }}
          {{- end }}
          {{- with .liveness }}
          livenessProbe:
            {{- include "flotilla.probe" . | nindent 12 }}
            {{- if .heartbeat }}
            initialDelaySeconds: 20
            periodSeconds: 15
            timeoutSeconds: 10
            {{- else }}
            periodSeconds: 10
            timeoutSeconds: 3
            {{- end }}
          {{- end }}
          {{- end }}
          resources: {{- toYaml $c.resources | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            {{- if $c.dataVolume }}
            - {name: data, mountPath: {{ $c.dataVolume }}}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {sizeLimit: 64Mi}
        {{- if $c.dataVolume }}
        - name: data
          emptyDir: {sizeLimit: 1Gi}
        {{- end }}
{{- if $c.port }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels: {{- include "flotilla.labels" (list $root $c.name) | nindent 4 }}
spec:
  {{- $nodePort := get $root.Values.nodePorts $c.name }}
  {{- if $nodePort }}
  type: NodePort          # kind maps it to the host (k8s/kind-config.yaml)
  {{- end }}
  selector: {{- include "flotilla.selector" (list $root $c.name) | nindent 4 }}
  ports:
    - {name: http, port: {{ int $c.port }}, targetPort: http{{ if $nodePort }}, nodePort: {{ $nodePort }}{{ end }}}
{{- end }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels: {{- include "flotilla.labels" (list $root $c.name) | nindent 4 }}
spec:
  maxUnavailable: 1       # drains go one pod at a time; workers finish what they hold first
  selector:
    matchLabels: {{- include "flotilla.selector" (list $root $c.name) | nindent 6 }}
{{- end -}}


{{/* A probe of the catalogue: {http: /path} on the http port, or {heartbeat: max age s}. */}}
{{- define "flotilla.probe" -}}
{{- if .http -}}
httpGet: {path: {{ .http }}, port: http}
{{- else -}}
# the worker touches a heartbeat file while its consumer and worker threads live
exec: {command: [python, -m, flotilla.core.alive, {{ int .heartbeat | quote }}]}
{{- end -}}
{{- end -}}
