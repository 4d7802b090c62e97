{{- define "kdran-dapp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kdran-dapp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "kdran-dapp.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "kdran-dapp.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kdran-dapp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kdran-dapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kdran-dapp.labels" -}}
{{ include "kdran-dapp.selectorLabels" . }}
app.kubernetes.io/component: dapp
app.kubernetes.io/part-of: kdran
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "kdran-dapp.tlsMount" -}}/etc/kdran/tls{{- end -}}
{{- define "kdran-dapp.signingMount" -}}/etc/kdran/signing{{- end -}}
{{- define "kdran-dapp.socketDir" -}}/var/run/kdran{{- end -}}

{{/* Name the exec probe expects in the server certificate: the Service's DNS name by default. */}}
{{- define "kdran-dapp.tlsServerName" -}}
{{- default (printf "%s.%s.svc" (include "kdran-dapp.fullname" .) .Release.Namespace) .Values.grpcTls.serverName -}}
{{- end -}}

{{/*
Probe action: Kubernetes' native gRPC health probe, or with TLS an exec of the image's
grpc_health_check.py (native gRPC probes do not speak TLS).
*/}}
{{- define "kdran-dapp.probeAction" -}}
{{- if .Values.grpcTls.enabled -}}
{{- $tls := include "kdran-dapp.tlsMount" . -}}
exec:
  command:
    - python
    - /opt/kdran/bin/grpc_health_check.py
    - --address
    - {{ printf "127.0.0.1:%v" .Values.grpc.port | quote }}
    - --tls-ca
    - {{ printf "%s/ca.crt" $tls }}
    - --tls-cert
    - {{ printf "%s/tls.crt" $tls }}
    - --tls-key
    - {{ printf "%s/tls.key" $tls }}
    - --server-name
    - {{ include "kdran-dapp.tlsServerName" . }}
{{- else -}}
grpc:
  port: {{ .Values.grpc.port }}
{{- end -}}
{{- end -}}

{{/* Arguments of `kdran dapp serve`. */}}
{{- define "kdran-dapp.args" -}}
- --listen
- {{ printf "0.0.0.0:%v" .Values.grpc.port | quote }}
- --metrics-port
- {{ .Values.metrics.port | quote }}
- --state-dir
- /var/lib/kdran/state
- --preset
- {{ .Values.preset }}
{{- if .Values.seedModel.existingClaim }}
- --model
- /var/lib/kdran/seed-model
{{- end }}
{{- if .Values.uds.enabled }}
- --uds
- {{ printf "%s/%s" (include "kdran-dapp.socketDir" .) .Values.uds.socketName }}
{{- end }}
{{- if .Values.grpcTls.enabled }}
{{- $tls := include "kdran-dapp.tlsMount" . }}
- --tls-cert
- {{ printf "%s/tls.crt" $tls }}
- --tls-key
- {{ printf "%s/tls.key" $tls }}
- --tls-client-ca
- {{ printf "%s/ca.crt" $tls }}
{{- end }}
{{- if ge (int .Values.cpuWakeupLatencyUs) 0 }}
- --cpu-wakeup-latency-us
- {{ .Values.cpuWakeupLatencyUs | quote }}
{{- end }}
{{- if .Values.modelSigning.existingSecret }}
- --verify-key
- {{ printf "%s/%s" (include "kdran-dapp.signingMount" .) .Values.modelSigning.publicKeyKey }}
{{- end }}
{{- with .Values.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Required pod affinity to the DU's pods (same node), merged with .Values.affinity. */}}
{{- define "kdran-dapp.affinity" -}}
{{- $affinity := deepCopy .Values.affinity -}}
{{- if .Values.du.podLabels -}}
{{- $term := dict "labelSelector" (dict "matchLabels" .Values.du.podLabels) "topologyKey" "kubernetes.io/hostname" -}}
{{- with .Values.du.namespaces -}}
{{- $_ := set $term "namespaces" . -}}
{{- end -}}
{{- $podAffinity := default dict (get $affinity "podAffinity") -}}
{{- $required := default list (get $podAffinity "requiredDuringSchedulingIgnoredDuringExecution") -}}
{{- $_ := set $podAffinity "requiredDuringSchedulingIgnoredDuringExecution" (append $required $term) -}}
{{- $_ := set $affinity "podAffinity" $podAffinity -}}
{{- end -}}
{{- if $affinity -}}
{{- toYaml $affinity -}}
{{- end -}}
{{- end -}}

{{/* The pod template shared by the Deployment and the DaemonSet. */}}
{{- define "kdran-dapp.podTemplate" -}}
{{- $grpcTls := .Values.grpcTls -}}
{{- if $grpcTls.enabled -}}
{{- $_ := required "grpcTls.existingSecret is required when grpcTls.enabled is true" $grpcTls.existingSecret -}}
{{- end -}}
{{- if not (has .Values.uds.volume (list "hostPath" "emptyDir")) -}}
{{- fail (printf "uds.volume must be hostPath or emptyDir, got %q" .Values.uds.volume) -}}
{{- end -}}
metadata:
  labels:
    {{- include "kdran-dapp.labels" . | nindent 4 }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "kdran-dapp.fullname" . }}
  automountServiceAccountToken: false
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: dapp
      image: {{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        {{- include "kdran-dapp.args" . | nindent 8 }}
      ports:
        - name: grpc
          containerPort: {{ .Values.grpc.port }}
          protocol: TCP
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
      startupProbe:
        {{- include "kdran-dapp.probeAction" . | nindent 8 }}
        {{- toYaml .Values.probes.startup | nindent 8 }}
      livenessProbe:
        {{- include "kdran-dapp.probeAction" . | nindent 8 }}
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      readinessProbe:
        {{- include "kdran-dapp.probeAction" . | nindent 8 }}
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: state
          mountPath: /var/lib/kdran/state
        - name: tmp
          mountPath: /tmp
        {{- if .Values.seedModel.existingClaim }}
        - name: seed-model
          mountPath: /var/lib/kdran/seed-model
          readOnly: true
          {{- with .Values.seedModel.subPath }}
          subPath: {{ . }}
          {{- end }}
        {{- end }}
        {{- if .Values.uds.enabled }}
        - name: uds
          mountPath: {{ include "kdran-dapp.socketDir" . }}
        {{- end }}
        {{- if $grpcTls.enabled }}
        - name: grpc-tls
          mountPath: {{ include "kdran-dapp.tlsMount" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.modelSigning.existingSecret }}
        - name: model-signing
          mountPath: {{ include "kdran-dapp.signingMount" . }}
          readOnly: true
        {{- end }}
        {{- if ge (int .Values.cpuWakeupLatencyUs) 0 }}
        - name: cpu-dma-latency
          mountPath: /dev/cpu_dma_latency
        {{- end }}
    {{- with .Values.extraContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumes:
    - name: state
      {{- if .Values.state.hostPath }}
      hostPath:
        path: {{ .Values.state.hostPath }}
        type: DirectoryOrCreate
      {{- else }}
      emptyDir: {}
      {{- end }}
    - name: tmp
      emptyDir: {}
    {{- if .Values.seedModel.existingClaim }}
    - name: seed-model
      persistentVolumeClaim:
        claimName: {{ .Values.seedModel.existingClaim }}
        readOnly: true
    {{- end }}
    {{- if .Values.uds.enabled }}
    - name: uds
      {{- if eq .Values.uds.volume "hostPath" }}
      hostPath:
        path: {{ .Values.uds.hostPath }}
        type: Directory
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
    {{- if $grpcTls.enabled }}
    - name: grpc-tls
      secret:
        secretName: {{ $grpcTls.existingSecret }}
        defaultMode: 0440
    {{- end }}
    {{- with .Values.modelSigning }}
    {{- if .existingSecret }}
    - name: model-signing
      secret:
        secretName: {{ .existingSecret }}
        defaultMode: 0440
        items:
          - key: {{ .publicKeyKey }}
            path: {{ .publicKeyKey }}
    {{- end }}
    {{- end }}
    {{- if ge (int .Values.cpuWakeupLatencyUs) 0 }}
    - name: cpu-dma-latency
      hostPath:
        path: /dev/cpu_dma_latency
        type: CharDevice
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "kdran-dapp.affinity" . }}
  affinity:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
