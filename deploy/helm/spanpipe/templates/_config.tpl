{{/*
The spanpipe configuration of each tier, as a YAML string.

`.Values.config` already holds the chart's default with the user's values merged over it by Helm (maps merge,
lists replace, null deletes). The presets, the persistent queue and the memory settings are then merged under it
with mustMergeOverwrite (what the user set wins), as the OpenTelemetry Collector chart applies its presets.
*/}}

{{/* The single tier, or the back tier of twoTier. */}}
{{- define "spanpipe.mainConfig" -}}
{{- $config := deepCopy .Values.config }}
{{- if .Values.presets.openshiftCr.enabled }}
{{- $config = include "spanpipe.applyOpenshiftCr" (dict "root" . "config" $config) | fromYaml }}
{{- end }}
{{- if include "spanpipe.persistentQueue" . }}
{{- $config = include "spanpipe.applyPersistentQueue" (dict "root" . "config" $config) | fromYaml }}
{{- end }}
{{- $config = include "spanpipe.applyMemory" (dict "root" . "config" $config "resources" .Values.resources) | fromYaml }}
{{- toYaml $config }}
{{- end }}

{{/* The front tier of twoTier: otlp → loadbalancing (trace id) → the back's headless Service. */}}
{{- define "spanpipe.frontConfig" -}}
{{- $config := mustMergeOverwrite (include "spanpipe.frontDefaultConfig" . | fromYaml) (deepCopy .Values.twoTier.front.config) }}
{{- $config = include "spanpipe.applyMemory" (dict "root" . "config" $config "resources" .Values.twoTier.front.resources) | fromYaml }}
{{- toYaml $config }}
{{- end }}

{{- define "spanpipe.frontDefaultConfig" -}}
{{- $grpcPort := int (index .Values.ports "otlp-grpc").containerPort }}
{{- $ns := include "spanpipe.namespace" . }}
extensions:
  health_check:
    endpoint: {{ dig "extensions" "health_check" "endpoint" "0.0.0.0:13133" .Values.config | quote }}
receivers:
  {{- toYaml (pick .Values.config.receivers "otlp") | nindent 2 }}
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls:
          insecure: true
        sending_queue:
          queue_size: 1000
        retry_on_failure:
          max_elapsed_time: 5m
    resolver:
      {{- if eq .Values.twoTier.resolver "k8s" }}
      k8s:
        service: {{ printf "%s.%s" (include "spanpipe.backHeadlessName" .) $ns | quote }}
        ports: [{{ $grpcPort }}]
      {{- else if eq .Values.twoTier.resolver "dns" }}
      dns:
        hostname: {{ printf "%s.%s.svc.%s" (include "spanpipe.backHeadlessName" .) $ns .Values.twoTier.clusterDomain | quote }}
        port: {{ $grpcPort | toString | quote }}
        interval: {{ .Values.twoTier.dnsInterval | quote }}
      {{- else }}
      {{- fail (printf "twoTier.resolver must be dns or k8s, not %q" .Values.twoTier.resolver) }}
      {{- end }}
service:
  extensions: [health_check]
  shutdown_timeout: {{ dig "service" "shutdown_timeout" "20s" .Values.config | quote }}
  {{- with .Values.config.service.telemetry }}
  telemetry:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [loadbalancing]
{{- end }}

{{/* openshiftCr: every mlflow exporter gets the workspace, the token file and the merged CA bundle. */}}
{{- define "spanpipe.applyOpenshiftCr" -}}
{{- $config := .config }}
{{- range $id, $exp := (default (dict) $config.exporters) }}
{{- if or (eq $id "mlflow") (hasPrefix "mlflow/" $id) }}
{{- $preset := dict "workspace" "${env:MLFLOW_WORKSPACE}" "token_file" "/var/run/secrets/kubernetes.io/serviceaccount/token" "tls" (dict "ca_file" "${env:SPANPIPE_CA_BUNDLE}") }}
{{- $_ := set $config.exporters $id (mustMergeOverwrite $preset (default (dict) $exp)) }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Non-empty when the main tier keeps a persistent queue: statefulset mode or the back of twoTier. */}}
{{- define "spanpipe.persistentQueue" -}}
{{- if and .Values.statefulset.persistentQueue.enabled (or .Values.twoTier.enabled (eq .Values.mode "statefulset")) }}true{{ end }}
{{- end }}

{{- define "spanpipe.applyPersistentQueue" -}}
{{- $root := .root }}
{{- $pq := $root.Values.statefulset.persistentQueue }}
{{- $config := mustMergeOverwrite (dict "extensions" (dict) "exporters" (dict) "service" (dict "extensions" list)) .config }}
{{- $maxSize := $pq.maxSize }}
{{- if not $maxSize }}
{{- $volume := include "spanpipe.mebibytes" $root.Values.statefulset.volumeClaimTemplate.size | int64 }}
{{- $n := max 1 (len $pq.exporters) }}
{{- $maxSize = printf "%dMiB" (div (div (mul $volume 9) 10) $n) }}
{{- end }}
{{- $ext := dict "directory" $pq.directory "max_size" $maxSize "fsync" $pq.fsync }}
{{- $_ := set $config.extensions $pq.extensionName (mustMergeOverwrite $ext (default (dict) (index $config.extensions $pq.extensionName))) }}
{{- $_ := set $config.service "extensions" (append (default list $config.service.extensions) $pq.extensionName | uniq) }}
{{- range $pq.exporters }}
{{- $exp := index $config.exporters . }}
{{- if not (hasKey $config.exporters .) }}
{{- fail (printf "statefulset.persistentQueue.exporters names %q, which is not in config.exporters" .) }}
{{- end }}
{{- $exp = default (dict) $exp }}
{{- $preset := dict "storage" $pq.extensionName }}
{{- if $pq.batchInQueue }}
{{- $_ := set $preset "batch" (dict) }}
{{- end }}
{{- $queue := mustMergeOverwrite $preset (default (dict) $exp.sending_queue) }}
{{- $_ := set $exp "sending_queue" $queue }}
{{- $_ := set $config.exporters . $exp }}
{{- end }}
{{- if $pq.batchInQueue }}
{{- range $name, $p := (dig "pipelines" (dict) $config.service) }}
{{- $persisted := false }}
{{- range (default list $p.exporters) }}
{{- if has . $pq.exporters }}{{ $persisted = true }}{{ end }}
{{- end }}
{{- if and $persisted (has "batch" (default list $p.processors)) }}
{{- $_ := set $p "processors" (without $p.processors "batch") }}
{{- end }}
{{- end }}
{{- $used := false }}
{{- range $name, $p := (dig "pipelines" (dict) $config.service) }}
{{- if has "batch" (default list $p.processors) }}{{ $used = true }}{{ end }}
{{- end }}
{{- if and (not $used) $config.processors }}
{{- $_ := unset $config.processors "batch" }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
service.memory_limit from the container's memory limit (memoryBudget), and the memoryLimiter preset. Called with
(dict "root" $ "config" $config "resources" $resources).
*/}}
{{- define "spanpipe.applyMemory" -}}
{{- $root := .root }}
{{- $config := mustMergeOverwrite (dict "service" (dict)) .config }}
{{- $limit := dig "limits" "memory" "" (default (dict) .resources) }}
{{- if $limit }}
{{- $mib := include "spanpipe.mebibytes" $limit | int64 }}
{{- if and $root.Values.memoryBudget.fromMemoryLimit (not (hasKey $config.service "memory_limit")) }}
{{- $_ := set $config.service "memory_limit" (printf "%dMiB" (div (mul $mib (int64 $root.Values.memoryBudget.percentage)) 100)) }}
{{- end }}
{{- if $root.Values.presets.memoryLimiter.enabled }}
{{- $ml := $root.Values.presets.memoryLimiter }}
{{- $hard := div (mul $mib (int64 $ml.limitPercentage)) 100 }}
{{- $spike := div (mul $hard (int64 $ml.spikeLimitPercentage)) 100 }}
{{- $config = mustMergeOverwrite (dict "processors" (dict)) $config }}
{{- $preset := dict "check_interval" $ml.checkInterval "limit_mib" $hard "spike_limit_mib" $spike }}
{{- $_ := set $config.processors "memory_limiter" (mustMergeOverwrite $preset (default (dict) $config.processors.memory_limiter)) }}
{{- range $name, $p := (dig "pipelines" (dict) $config.service) }}
{{- if has "otlp" (default list $p.receivers) }}
{{- $procs := default list $p.processors }}
{{- if not (has "memory_limiter" $procs) }}
{{- $_ := set $p "processors" (prepend $procs "memory_limiter") }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- else if $root.Values.presets.memoryLimiter.enabled }}
{{- fail "presets.memoryLimiter needs resources.limits.memory (its limits are derived from it)" }}
{{- end }}
{{- toYaml $config }}
{{- end }}
