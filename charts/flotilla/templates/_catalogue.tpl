{{/*
The platform's components come from catalogue.yaml (written by `make catalogue` from
flotilla.contracts.catalogue, the one place that says what each component is: its command,
ports, queues, database, broker, concurrency, probes and what it calls). values.yaml's
`components` only says how this release runs each one (replicas, resources, autoscaling
policy, extra settings); `componentDefaults` covers a component values.yaml does not name.
*/}}

{{/* The catalogue as data: (include "flotilla.catalogue" . | fromJson). */}}
{{- define "flotilla.catalogue" -}}
{{- $file := .Files.Get "catalogue.yaml" -}}
{{- if not $file }}{{ fail "the chart has no catalogue.yaml: `make catalogue` writes it from flotilla.contracts.catalogue" }}{{ end -}}
{{- $file | fromYaml | toJson -}}
{{- end -}}

{{/* The port of a component or of infrastructure in the catalogue: (list $ name). */}}
{{- define "flotilla.port" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- $catalogue := include "flotilla.catalogue" $root | fromJson -}}
{{- $port := "" -}}
{{- with get $catalogue.infrastructure $name }}{{ $port = .port }}{{ end -}}
{{- range $catalogue.components }}{{ if and (eq .name $name) .port }}{{ $port = .port }}{{ end }}{{ end -}}
{{- if not $port }}{{ fail (printf "the catalogue has no port for %s" $name) }}{{ end -}}
{{- int $port -}}
{{- end -}}

{{/* The admin port (/metrics) of a component in the catalogue: (list $ name). */}}
{{- define "flotilla.adminPort" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- $port := "" -}}
{{- range (include "flotilla.catalogue" $root | fromJson).components }}{{ if eq .name $name }}{{ $port = .adminPort }}{{ end }}{{ end -}}
{{- if not $port }}{{ fail (printf "the catalogue has no admin port for %s" $name) }}{{ end -}}
{{- int $port -}}
{{- end -}}

{{/*
The components this chart deploys as Deployments (kinds edge, api, worker, console), each the
catalogue's entry with the release's choices merged in, as JSON {"items": [...]}:
(include "flotilla.components" . | fromJson).items
*/}}
{{- define "flotilla.components" -}}
{{- $root := . -}}
{{- $catalogue := include "flotilla.catalogue" . | fromJson -}}
{{- $known := list -}}
{{- range $catalogue.components }}{{ $known = append $known .name }}{{ end -}}
{{- range $name, $_ := .Values.components }}
{{- if not (has $name $known) }}
{{- fail (printf "components.%s: no such component in the catalogue (%s); a new component is an entry in flotilla.contracts.catalogue (docs/extending.md)" $name (join ", " $known)) }}
{{- end }}
{{- end -}}
{{- $items := list -}}
{{- range $entry := $catalogue.components }}
{{- if has $entry.kind (list "edge" "api" "worker" "console") }}
{{- $chosen := deepCopy (get $root.Values.components $entry.name | default dict) -}}
{{- $c := mergeOverwrite (deepCopy $root.Values.componentDefaults) $chosen -}}
{{- $c = mergeOverwrite $c (omit $entry "probes" "concurrency" "urls" "urlMaps") -}}
{{- $_ := set $c "probes" $entry.probes -}}
{{- $_ := set $c "tracingDisabled" (not $entry.traced) -}}
{{- $_ := set $c "terminationGracePeriodSeconds" $entry.gracePeriodSeconds -}}
{{- /* the settings the catalogue derives; the release's own settings win */ -}}
{{- $settings := dict -}}
{{- if $entry.port }}{{ $_ := set $settings "host" "0.0.0.0" }}{{ $_ := set $settings "port" (toString (int $entry.port)) }}{{ end -}}
{{- if $entry.adminPort }}{{ $_ := set $settings "admin_host" "0.0.0.0" }}{{ $_ := set $settings "admin_port" (toString (int $entry.adminPort)) }}{{ end -}}
{{- range $field, $peer := ($entry.urls | default dict) }}{{ $_ := set $settings $field (include "flotilla.url" (list $root $peer)) }}{{ end -}}
{{- range $field, $peers := ($entry.urlMaps | default dict) }}
{{- $map := dict }}{{ range $peers }}{{ $_ := set $map . (include "flotilla.url" (list $root .)) }}{{ end -}}
{{- $_ := set $settings $field (toJson $map) -}}
{{- end -}}
{{- with $entry.concurrency }}{{ $_ := set $settings .field (toString (int .default)) }}{{ end -}}
{{- $_ := set $c "settings" (mergeOverwrite $settings ($chosen.settings | default dict)) -}}
{{- with $entry.concurrency }}{{ $_ := set $c "concurrency" (dict "threads" (int (get $c.settings .field)) "field" .field "extra" (int .extra)) }}{{ end -}}
{{- $secrets := dict -}}
{{- with $entry.database }}{{ $_ := set $secrets "database_url" (dict "secret" "database" "key" (printf "%s-database-url" .)) }}{{ end -}}
{{- if $entry.broker }}{{ $_ := set $secrets "broker_url" (dict "secret" "broker" "key" "url") }}{{ end -}}
{{- $_ := set $c "secretSettings" (mergeOverwrite $secrets ($chosen.secretSettings | default dict)) -}}
{{- if and (eq $entry.kind "worker") (ne (toString $c.autoscaling.enabled) "false") }}
{{- $_ := set $c "autoscaling" (merge (dict "queues" $entry.consumes) (omit $c.autoscaling "enabled")) -}}
{{- else }}
{{- $_ := unset $c "autoscaling" -}}
{{- end }}
{{- $items = append $items $c -}}
{{- end }}
{{- end }}
{{- toJson (dict "items" $items) -}}
{{- end -}}
