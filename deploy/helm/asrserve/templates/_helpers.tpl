{{/* Names and labels. */}}
{{- define "asrserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "asrserve.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "asrserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "asrserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asrserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "asrserve.labels" -}}
helm.sh/chart: {{ include "asrserve.chart" . }}
{{ include "asrserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: asrserve
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "asrserve.componentSelectorLabels" -}}
{{ include "asrserve.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "asrserve.componentLabels" -}}
{{ include "asrserve.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "asrserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "asrserve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "asrserve.secretName" -}}
{{- default (include "asrserve.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "asrserve.uploadsClaim" -}}
{{- default (printf "%s-uploads" (include "asrserve.fullname" .)) .Values.uploads.existingClaim -}}
{{- end -}}

{{- define "asrserve.modelsClaim" -}}
{{- default (printf "%s-models" (include "asrserve.fullname" .)) .Values.models.persistence.existingClaim -}}
{{- end -}}

{{/*
The Celery queue the API sends job ids to and the workers consume: JobOptions.queue_name in
src/asrserve/jobs/options.py. It is not a setting, so the chart names it once, here.
*/}}
{{- define "asrserve.queueName" -}}
asrserve-jobs
{{- end -}}

{{/* The image of a component, never `latest`: (dict "root" $ "values" .Values.api). */}}
{{- define "asrserve.image" -}}
{{- $image := merge (deepCopy (default dict .values.image)) .root.Values.image -}}
{{- $tag := default .root.Chart.AppVersion $image.tag | toString -}}
{{- if eq $tag "latest" -}}
{{- fail "image tag `latest` is not allowed: pin a version (the default is the chart's appVersion) or a digest." -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: preStop sleep + the drain + a margin. Everything a process has in
flight at SIGTERM shares one deadline, shutdown_grace_s after the signal: the API's open streams
finish their utterance, then requests, then (embedded) jobs get what is left; a worker's running
jobs get all of it (asrserve.runtime.server, asrserve.runtime.worker).
*/}}
{{- define "asrserve.terminationGrace" -}}
{{- $s := .values.shutdown -}}
{{- add (int $s.preStopSeconds) (ceil $s.graceSeconds | int) (int .root.Values.terminationMarginSeconds) -}}
{{- end -}}

{{/* A flat map of settings as TOML: JSON scalars and arrays are valid TOML values; nulls are left out. */}}
{{- define "asrserve.toml" -}}
{{- range $key, $value := . }}
{{- if not (kindIs "invalid" $value) }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The TOML settings file of a component: (dict "root" $ "values" .Values.api). */}}
{{- define "asrserve.settingsFile" -}}
# asrserve settings (ASRSERVE_CONFIG). The chart sets host, ports, paths, the shutdown grace and
# the secrets as ASRSERVE_* environment variables, which take precedence over this file.
{{- include "asrserve.toml" (merge (deepCopy (default dict .values.config)) .root.Values.config) }}
{{- end -}}

{{- define "asrserve.maxUploadMb" -}}
{{- $config := merge (deepCopy (default dict .Values.api.config)) .Values.config -}}
{{- required "config.max_upload_mb is required: it is both the API's upload limit and the Ingress' proxy-body-size." $config.max_upload_mb -}}
{{- end -}}

{{/* Settings every container gets as ASRSERVE_* variables (the image's ENV is overridden). */}}
{{- define "asrserve.commonEnv" -}}
- name: ASRSERVE_CONFIG
  value: /etc/asrserve/{{ .component }}.toml
- name: ASRSERVE_HOST
  value: "0.0.0.0"
- name: ASRSERVE_DATA_DIR
  value: /data
- name: ASRSERVE_UPLOAD_DIR
  value: /data/uploads
- name: ASRSERVE_MODEL_DIR
  value: /models
- name: ASRSERVE_SHUTDOWN_GRACE_S
  value: {{ .values.shutdown.graceSeconds | toString | quote }}
- name: HOME
  value: /data
- name: XDG_CACHE_HOME
  value: /data/.cache
- name: HF_HOME
  value: /data/huggingface
- name: ASRSERVE_JOB_STORE
  valueFrom:
    secretKeyRef:
      name: {{ include "asrserve.secretName" .root }}
      key: job-store
- name: ASRSERVE_JOB_QUEUE
  valueFrom:
    secretKeyRef:
      name: {{ include "asrserve.secretName" .root }}
      key: job-queue
- name: ASRSERVE_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "asrserve.secretName" .root }}
      key: webhook-secret
      optional: true
{{- end -}}

{{- define "asrserve.resources" -}}
{{- $resources := deepCopy .values.resources -}}
{{- if gt (int .values.gpu.count) 0 -}}
{{- $limits := merge (dict .values.gpu.resourceName (int .values.gpu.count)) (default dict $resources.limits) -}}
{{- $_ := set $resources "limits" $limits -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end -}}

{{/* Volumes of both components. */}}
{{- define "asrserve.volumes" -}}
- name: config
  configMap:
    name: {{ include "asrserve.fullname" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.scratch.dataSizeLimit }}
- name: uploads
  persistentVolumeClaim:
    claimName: {{ include "asrserve.uploadsClaim" . }}
{{- if eq .Values.models.source "emptyDir" }}
- name: models
  emptyDir:
    sizeLimit: {{ .Values.models.emptyDir.sizeLimit }}
{{- else if eq .Values.models.source "persistentVolumeClaim" }}
- name: models
  persistentVolumeClaim:
    claimName: {{ include "asrserve.modelsClaim" . }}
    readOnly: {{ .Values.models.persistence.readOnly }}
{{- end }}
{{- end -}}

{{- define "asrserve.volumeMounts" -}}
- name: config
  mountPath: /etc/asrserve
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /data
- name: uploads
  mountPath: /data/uploads
{{- if ne .Values.models.source "image" }}
- name: models
  mountPath: /models
  readOnly: {{ .Values.models.persistence.readOnly | and (eq .Values.models.source "persistentVolumeClaim") }}
{{- end }}
{{- end -}}

{{/* The init container that assembles catalogue models into the models volume. */}}
{{- define "asrserve.prepareModels" -}}
{{- if and .root.Values.models.prepare (ne .root.Values.models.source "image") }}
{{- if and (eq .root.Values.models.source "persistentVolumeClaim") .root.Values.models.persistence.readOnly }}
{{- fail "models.prepare writes into the models volume: set models.persistence.readOnly to false, or leave models.prepare empty." }}
{{- end }}
initContainers:
  - name: prepare-models
    image: {{ include "asrserve.image" (dict "root" .root "values" .values) }}
    imagePullPolicy: {{ .root.Values.image.pullPolicy }}
    command: ["asrserve", "models", "prepare"]
    args: {{ toJson .root.Values.models.prepare }}
    env:
      - name: ASRSERVE_MODEL_DIR
        value: /models
      - name: HOME
        value: /data
    securityContext: {{- toYaml .root.Values.securityContext | nindent 6 }}
    resources: {{- toYaml .values.resources | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      - name: data
        mountPath: /data
      - name: models
        mountPath: /models
{{- end }}
{{- end -}}

{{/* Scheduling: spread over zones and hosts, GPU nodes (dict "root" $ "values" .Values.api "component" "api"). */}}
{{- define "asrserve.scheduling" -}}
{{- $selector := include "asrserve.componentSelectorLabels" . -}}
{{- with .values.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
topologySpreadConstraints:
  - maxSkew: {{ .values.topologySpread.maxSkew }}
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: {{ .values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels: {{- $selector | nindent 8 }}
    matchLabelKeys: ["pod-template-hash"]
  - maxSkew: {{ .values.topologySpread.maxSkew }}
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: {{ .values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels: {{- $selector | nindent 8 }}
    matchLabelKeys: ["pod-template-hash"]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels: {{- $selector | nindent 14 }}
{{- end -}}

{{/* Pod-level settings shared by both Deployments. */}}
{{- define "asrserve.podCommon" -}}
serviceAccountName: {{ include "asrserve.serviceAccountName" .root }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountServiceAccountToken }}
# Service links would put variables such as ASRSERVE_WORKER_PORT=tcp://… into the environment,
# where the settings would read them.
enableServiceLinks: false
terminationGracePeriodSeconds: {{ include "asrserve.terminationGrace" . }}
securityContext: {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "asrserve.preStop" -}}
{{- if gt (int .values.shutdown.preStopSeconds) 0 }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ int .values.shutdown.preStopSeconds }}
{{- end }}
{{- end -}}

{{- define "asrserve.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- if not .root.Values.secrets.existingSecret }}
checksum/secret: {{ include (print .root.Template.BasePath "/secret.yaml") .root | sha256sum }}
{{- end }}
{{- with .values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "asrserve.workerProbe" -}}
{{- if eq .Values.worker.probeType "exec" -}}
exec:
  command: ["asrserve", "worker", "--check"]
{{- else -}}
httpGet:
  path: /health
  port: metrics
{{- end -}}
{{- end -}}
