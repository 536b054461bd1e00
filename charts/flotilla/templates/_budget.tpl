{{/*
The connection budget: the most PostgreSQL connections the release can hold at once, per
component and in all, as JSON. Each process' pool is fixed from its own concurrency (the
catalogue's concurrency field, flotilla.core.pool_size_for): request_threads + 2 for an API
(its background thread and its readiness check), worker_threads + 1 for a worker (its outbox
relay); a pod runs one process,
whose init container (the migration) holds one connection before the pool exists. Each
Deployment counts at its most replicas (maxReplicas when autoscaled) plus the one pod of surge
its rolling update may add (maxSurge: 1, _component.tpl).
*/}}
{{- define "flotilla.connectionBudget" -}}
{{- $root := . -}}
{{- $rows := list -}}
{{- $total := 0 -}}
{{- range $c := (include "flotilla.components" . | fromJson).items }}
{{- if $c.database }}
{{- if not $c.concurrency }}
{{- fail (printf "connection budget: component %s uses the database but its catalogue entry names no concurrency, which sizes its pool" $c.name) }}
{{- end }}
{{- $perPod := add $c.concurrency.threads $c.concurrency.extra }}
{{- $replicas := 1 }}
{{- if $c.autoscaling }}{{ $replicas = int $c.autoscaling.maxReplicas }}
{{- else }}{{ $replicas = int (get $root.Values.replicaCounts $c.name | default ($c.replicas | default 1)) }}{{ end }}
{{- $pods := add $replicas 1 }}
{{- $rows = append $rows (dict "component" $c.name "pods" $pods "perPod" $perPod "connections" (mul $pods $perPod)) }}
{{- $total = add $total (mul $pods $perPod) }}
{{- end }}
{{- end }}
{{- $max := int .Values.postgresql.maxConnections }}
{{- $reserved := int .Values.postgresql.reservedConnections }}
{{- toJson (dict "components" $rows "total" $total "maxConnections" $max "reserved" $reserved "available" (sub $max $reserved)) }}
{{- end -}}

{{/* The budget in one line: "orders-api 3x10 + ... = 117 of 140 (max_connections 150 - 10 reserved)". */}}
{{- define "flotilla.connectionBudgetLine" -}}
{{- $parts := list -}}
{{- range .components }}{{ $parts = append $parts (printf "%s %dx%d" .component (int .pods) (int .perPod)) }}{{ end -}}
{{ join " + " $parts }} = {{ int .total }} connections at full scale, of PostgreSQL's max_connections {{ int .maxConnections }} - {{ int .reserved }} reserved = {{ int .available }}
{{- end -}}
