{{/*
Helpers shared by every template. Those about one part of the release take (list $ "part"),
where $ is the root context and "part" a component name ("inference") or "nats", ...
*/}}

{{- define "revo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* "<release>-<part>": the name of every object of that part (Deployment, Service, ...). */}}
{{- define "revo.fullname" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" $root.Release.Name (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* The labels a part's pods are selected by. They never change, so upgrades can't break them. */}}
{{- define "revo.selectorLabels" -}}
app.kubernetes.io/name: {{ index . 1 }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
{{- end }}

{{- define "revo.labels" -}}
{{ include "revo.selectorLabels" . }}
app.kubernetes.io/component: {{ index . 1 }}
app.kubernetes.io/part-of: revo
app.kubernetes.io/version: {{ (index . 0).Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ (index . 0).Release.Service }}
helm.sh/chart: {{ include "revo.chart" (index . 0) }}
{{- end }}

{{/*
"agent-runner" -> "REVO_AGENT_RUNNER": the env prefix of that service's pydantic-settings
class. The env names built on it are the contract between the chart and the services.
*/}}
{{- define "revo.envPrefix" -}}
{{- printf "REVO_%s" (. | upper | replace "-" "_") -}}
{{- end }}

{{/* The image of a component: the GPU build when it may use a GPU and gpu.enabled=true. (list $ component) */}}
{{- define "revo.image" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $image := $root.Values.image -}}
{{- if and $component.gpu $root.Values.gpu.enabled -}}
{{- $image = $root.Values.gpuImage -}}
{{- end -}}
{{- printf "%s:%s" $image.repository ($image.tag | default $root.Chart.AppVersion) -}}
{{- end }}

{{- define "revo.imagePullPolicy" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- if and $component.gpu $root.Values.gpu.enabled -}}
{{- $root.Values.gpuImage.pullPolicy -}}
{{- else -}}
{{- $root.Values.image.pullPolicy -}}
{{- end -}}
{{- end }}

{{- define "revo.natsUrl" -}}
{{- if .Values.nats.enabled -}}
nats://{{ include "revo.fullname" (list . "nats") }}:4222
{{- else -}}
{{- required "nats.url is required when nats.enabled=false" .Values.nats.url -}}
{{- end -}}
{{- end }}

{{/* Empty when tracing has nowhere to go. */}}
{{- define "revo.otlpEndpoint" -}}
{{- if .Values.otel.endpoint -}}
{{- .Values.otel.endpoint -}}
{{- else if .Values.jaeger.enabled -}}
http://{{ include "revo.fullname" (list . "jaeger") }}:4318
{{- end -}}
{{- end }}

{{/* The Secret whose `database-url` key is the DSN every database-backed service gets. */}}
{{- define "revo.databaseSecretName" -}}
{{- if .Values.postgres.enabled -}}
{{- include "revo.fullname" (list . "postgres") -}}
{{- else -}}
{{- required "postgres.existingSecret (a Secret with a database-url key) is required when postgres.enabled=false" .Values.postgres.existingSecret -}}
{{- end -}}
{{- end }}
