{{/* Names, labels and small helpers shared by every template. */}}

{{- define "spanpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name when it already contains the chart name (release `spanpipe` → objects named `spanpipe`, as
the kustomize manifests), else <release>-<chart>; as the OTel Collector chart does. */}}
{{- define "spanpipe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "spanpipe.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "spanpipe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Call with (dict "root" $ "component" "collector"). */}}
{{- define "spanpipe.labels" -}}
helm.sh/chart: {{ include "spanpipe.chart" .root }}
{{ include "spanpipe.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.additionalLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "spanpipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spanpipe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "spanpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "spanpipe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "spanpipe.image" -}}
{{- $tag := toString (default .Chart.AppVersion .Values.image.tag) }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The workload's name for the MLflow server of the standalone preset. */}}
{{- define "spanpipe.mlflowName" -}}
{{- default "mlflow" .Values.presets.standalone.mlflow.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Names in the two-tier layout: the front keeps the chart's names (clients keep their endpoint); the back is
<fullname>-back behind the headless Service <fullname>-back-headless that the front's resolver reads. */}}
{{- define "spanpipe.backName" -}}
{{- printf "%s-back" (include "spanpipe.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "spanpipe.backHeadlessName" -}}
{{- printf "%s-back-headless" (include "spanpipe.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A Kubernetes memory quantity (512Mi, 1Gi, 1.5Gi, 1G, 800M, bytes) → whole MiB; fails on anything else. */}}
{{- define "spanpipe.mebibytes" -}}
{{- $q := . }}
{{- if or (kindIs "float64" $q) (kindIs "int" $q) (kindIs "int64" $q) }}
{{- div (int64 $q) 1048576 }}
{{- else }}
{{- $s := toString $q | trim }}
{{- $units := list (list "Ti" 1048576.0) (list "Gi" 1024.0) (list "Mi" 1.0) (list "Ki" 0.0009765625) (list "T" 953674.31640625) (list "G" 953.67431640625) (list "M" 0.95367431640625) (list "k" 0.0009313225746154785) }}
{{- $mib := -1.0 }}
{{- range $units }}
{{- $suffix := index . 0 }}
{{- if and (lt $mib 0.0) (hasSuffix $suffix $s) (regexMatch "^[0-9]+(\\.[0-9]+)?$" (trimSuffix $suffix $s)) }}
{{- $mib = mulf (float64 (trimSuffix $suffix $s)) (index . 1) }}
{{- end }}
{{- end }}
{{- if and (lt $mib 0.0) (regexMatch "^[0-9]+$" $s) }}
{{- $mib = divf (float64 $s) 1048576.0 }}
{{- end }}
{{- if lt $mib 0.0 }}
{{- fail (printf "cannot read the memory quantity %q (use e.g. 512Mi or 1Gi)" $s) }}
{{- end }}
{{- floor $mib | int64 }}
{{- end }}
{{- end }}
