{{/*
What each workload (Deployment, StatefulSet, DaemonSet; the front and back of twoTier) is made of.
A tier is a dict:
  name        object name; component  app.kubernetes.io/component
  config      the spanpipe config (YAML string); configMap  its ConfigMap's name
  resources   container resources; excludePorts  port names this tier does not serve
  mlflow      true: the MLflow environment (tracking URI, experiment, openshiftCr workspace + CA bundle)
  persistent  true: the persistent queue volume (statefulset volumeClaimTemplates)
  automount   service-account token mounted
*/}}

{{- define "spanpipe.tiers" -}}
{{- $root := . }}
{{- $fullname := include "spanpipe.fullname" . }}
{{- $automount := .Values.serviceAccount.automountServiceAccountToken }}
{{- $mainAutomount := ternary $automount .Values.presets.openshiftCr.enabled (not (kindIs "invalid" $automount)) }}
{{- $frontAutomount := ternary $automount (eq .Values.twoTier.resolver "k8s") (not (kindIs "invalid" $automount)) }}
{{- if .Values.twoTier.enabled }}
front:
  name: {{ $fullname }}
  component: front
  kind: Deployment
  configMap: {{ printf "%s-front-config" $fullname | trunc 63 | trimSuffix "-" }}
  resources: {{ toYaml .Values.twoTier.front.resources | nindent 4 }}
  excludePorts: {{ toYaml .Values.twoTier.front.excludePorts | nindent 4 }}
  mlflow: false
  persistent: false
  automount: {{ $frontAutomount }}
  replicaCount: {{ .Values.twoTier.front.replicaCount }}
  autoscaling: {{ toYaml .Values.twoTier.front.autoscaling | nindent 4 }}
  podDisruptionBudget: {{ toYaml .Values.twoTier.front.podDisruptionBudget | nindent 4 }}
  headlessService: {{ printf "%s-headless" $fullname | trunc 63 | trimSuffix "-" }}
  clusterService: {{ $fullname }}
  headlessMetrics: false
back:
  name: {{ include "spanpipe.backName" . }}
  component: back
  kind: StatefulSet
  configMap: {{ printf "%s-back-config" $fullname | trunc 63 | trimSuffix "-" }}
  resources: {{ toYaml .Values.resources | nindent 4 }}
  excludePorts: []
  mlflow: true
  persistent: {{ include "spanpipe.persistentQueue" . | eq "true" }}
  automount: {{ $mainAutomount }}
  replicaCount: {{ .Values.replicaCount }}
  autoscaling: {{ toYaml .Values.autoscaling | nindent 4 }}
  podDisruptionBudget: {{ toYaml .Values.podDisruptionBudget | nindent 4 }}
  headlessService: {{ include "spanpipe.backHeadlessName" . }}
  clusterService: ""
  headlessMetrics: true
{{- else }}
{{- $kind := get (dict "deployment" "Deployment" "statefulset" "StatefulSet" "daemonset" "DaemonSet") .Values.mode }}
{{- if not $kind }}
{{- fail (printf "mode must be deployment, statefulset or daemonset, not %q" .Values.mode) }}
{{- end }}
main:
  name: {{ $fullname }}
  component: collector
  kind: {{ $kind }}
  configMap: {{ printf "%s-config" $fullname | trunc 63 | trimSuffix "-" }}
  resources: {{ toYaml .Values.resources | nindent 4 }}
  excludePorts: []
  mlflow: true
  persistent: {{ include "spanpipe.persistentQueue" . | eq "true" }}
  automount: {{ $mainAutomount }}
  replicaCount: {{ .Values.replicaCount }}
  autoscaling: {{ toYaml .Values.autoscaling | nindent 4 }}
  podDisruptionBudget: {{ toYaml .Values.podDisruptionBudget | nindent 4 }}
  headlessService: {{ printf "%s-headless" $fullname | trunc 63 | trimSuffix "-" }}
  clusterService: {{ $fullname }}
  headlessMetrics: false
{{- end }}
{{- end }}

{{/* The config of a tier by its component. */}}
{{- define "spanpipe.tierConfig" -}}
{{- if eq .tier.component "front" }}
{{- include "spanpipe.frontConfig" .root }}
{{- else }}
{{- include "spanpipe.mainConfig" .root }}
{{- end }}
{{- end }}

{{/* The enabled ports of a tier, as a list of dicts with their name. */}}
{{- define "spanpipe.tierPorts" -}}
{{- $out := list }}
{{- range $name, $p := .root.Values.ports }}
{{- if and $p.enabled (not (has $name $.tier.excludePorts)) }}
{{- $out = append $out (mustMergeOverwrite (dict "name" $name) $p) }}
{{- end }}
{{- end }}
{{- toYaml (dict "ports" $out) }}
{{- end }}

{{/* Pod template of a tier: (dict "root" $ "tier" $tier). */}}
{{- define "spanpipe.podTemplate" -}}
{{- $root := .root }}
{{- $tier := .tier }}
{{- $v := $root.Values }}
{{- $ports := (include "spanpipe.tierPorts" . | fromYaml).ports }}
{{- $selector := dict "root" $root "component" $tier.component }}
metadata:
  labels:
    {{- include "spanpipe.selectorLabels" $selector | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "spanpipe.tierConfig" . | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "spanpipe.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $tier.automount }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  {{- $psc := deepCopy $v.podSecurityContext }}
  {{- if and $tier.persistent (not (kindIs "invalid" $v.statefulset.fsGroup)) (not (hasKey $psc "fsGroup")) }}
  {{- $_ := set $psc "fsGroup" $v.statefulset.fsGroup }}
  {{- end }}
  {{- with $psc }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if ne $tier.kind "DaemonSet" }}
  {{- if kindIs "invalid" $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "spanpipe.selectorLabels" $selector | nindent 10 }}
  {{- else if $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml $v.topologySpreadConstraints | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- $openshift := and $tier.mlflow $v.presets.openshiftCr.enabled }}
  {{- if or $openshift $v.initContainers }}
  initContainers:
    {{- if $openshift }}
    {{- include "spanpipe.caBundleInitContainer" $root | nindent 4 }}
    {{- end }}
    {{- with $v.initContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  containers:
    - name: spanpipe
      image: {{ include "spanpipe.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args:
        - --config
        - /etc/spanpipe/config/config.yaml
        {{- range $v.command.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      {{- $env := list }}
      {{- if $tier.mlflow }}
      {{- $uri := $v.mlflow.trackingUri }}
      {{- if $v.presets.standalone.enabled }}
      {{- $uri = printf "http://%s:%d" (include "spanpipe.mlflowName" $root) (int $v.presets.standalone.mlflow.port) }}
      {{- else if $v.presets.openshiftCr.enabled }}
      {{- $uri = $v.presets.openshiftCr.trackingUri }}
      {{- end }}
      {{- $env = append $env (dict "name" "MLFLOW_TRACKING_URI" "value" $uri) }}
      {{- $env = append $env (dict "name" "MLFLOW_EXPERIMENT_NAME" "value" $v.mlflow.experimentName) }}
      {{- if $openshift }}
      {{- $env = append $env (dict "name" "MLFLOW_WORKSPACE" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.namespace"))) }}
      {{- $env = append $env (dict "name" "SPANPIPE_CA_BUNDLE" "value" (printf "%s/ca-bundle.crt" $v.presets.openshiftCr.caBundle.mountPath)) }}
      {{- end }}
      {{- end }}
      {{- $env = concat $env $v.extraEnvs }}
      {{- with $env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.extraEnvsFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        {{- range $ports }}
        - name: {{ .name }}
          containerPort: {{ .containerPort }}
          protocol: {{ default "TCP" .protocol }}
          {{- if and .hostPort (eq $tier.kind "DaemonSet") }}
          hostPort: {{ .hostPort }}
          {{- end }}
        {{- end }}
      {{- with $v.startupProbe }}
      startupProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $v.preStopSleepSeconds }}
      lifecycle:
        preStop:
          exec:
            command: ["/bin/sleep", {{ $v.preStopSleepSeconds | toString | quote }}]
      {{- end }}
      {{- with $tier.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/spanpipe/config
          readOnly: true
        {{- if $tier.persistent }}
        - name: queue
          mountPath: {{ $v.statefulset.persistentQueue.directory }}
        {{- end }}
        {{- if $openshift }}
        - name: ca-bundle
          mountPath: {{ $v.presets.openshiftCr.caBundle.mountPath }}
          readOnly: true
        {{- end }}
        {{- with $v.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ $tier.configMap }}
    {{- if $openshift }}
    - name: ca-bundle
      emptyDir:
        sizeLimit: 4Mi
    - name: trusted-ca
      configMap:
        name: {{ include "spanpipe.fullname" $root }}-trusted-ca
        optional: true
    - name: service-ca
      configMap:
        name: {{ include "spanpipe.fullname" $root }}-service-ca
        optional: true
    {{- end }}
    {{- with $v.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* openshiftCr: merges the system CAs, the cluster's trusted bundle, the service CA and the service-account CA
into one PEM file (tls.ca_file replaces the built-in roots). Runs once per pod start. */}}
{{- define "spanpipe.caBundleInitContainer" -}}
{{- $dir := .Values.presets.openshiftCr.caBundle.mountPath }}
- name: merge-ca-bundle
  image: {{ include "spanpipe.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - /bin/sh
    - -c
    - |
      set -eu
      out={{ $dir }}/ca-bundle.crt
      : > "$out.tmp"
      n=0
      for f in /etc/ssl/certs/ca-certificates.crt \
               /etc/spanpipe/ca-sources/trusted/ca-bundle.crt \
               /etc/spanpipe/ca-sources/service/service-ca.crt \
               /var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt \
               /var/run/secrets/kubernetes.io/serviceaccount/ca.crt; do
        if [ -s "$f" ]; then cat "$f" >> "$out.tmp"; echo >> "$out.tmp"; n=$((n + 1)); fi
      done
      mv "$out.tmp" "$out"
      echo "merged $n CA files ($(grep -c 'BEGIN CERTIFICATE' "$out") certificates) into $out"
  resources:
    requests: { cpu: 10m, memory: 16Mi }
    limits: { memory: 64Mi }
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: ca-bundle
      mountPath: {{ $dir }}
    - name: trusted-ca
      mountPath: /etc/spanpipe/ca-sources/trusted
      readOnly: true
    - name: service-ca
      mountPath: /etc/spanpipe/ca-sources/service
      readOnly: true
{{- end }}
