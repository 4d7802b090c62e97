{{/*
Names follow the O-RAN SC xapp-std chart: instance name <name>, full name <prefix>-<release>
(ricxapp-<name>), services service-<fullname>-rmr / -http, config maps configmap-<fullname>-*.
*/}}

{{/* The xApp descriptor as shipped (descriptor/config-file.json), parsed; fails on bad JSON. */}}
{{- define "kdran-xapp.shippedDescriptor" -}}
{{- $raw := .Files.Get "descriptor/config-file.json" -}}
{{- if not $raw -}}
{{- fail "descriptor/config-file.json is missing from the chart" -}}
{{- end -}}
{{- $doc := fromJson $raw -}}
{{- if hasKey $doc "Error" -}}
{{- fail (printf "descriptor/config-file.json is not JSON: %s" $doc.Error) -}}
{{- end -}}
{{- toJson $doc -}}
{{- end -}}

{{- define "kdran-xapp.name" -}}
{{- $descriptor := include "kdran-xapp.shippedDescriptor" . | fromJson -}}
{{- default $descriptor.name .Values.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kdran-xapp.namespacePrefix" -}}
{{- default .Release.Namespace .Values.nsPrefix -}}
{{- end -}}

{{- define "kdran-xapp.fullname" -}}
{{- $generated := printf "%s-%s" (include "kdran-xapp.namespacePrefix" .) .Release.Name -}}
{{- default $generated .Values.fullname | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kdran-xapp.app" -}}
{{- printf "%s-%s" (include "kdran-xapp.namespacePrefix" .) (include "kdran-xapp.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kdran-xapp.servicename.rmr" -}}
{{- printf "service-%s-rmr" (include "kdran-xapp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kdran-xapp.servicename.http" -}}
{{- printf "service-%s-http" (include "kdran-xapp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kdran-xapp.configmapname" -}}
{{- printf "configmap-%s" (include "kdran-xapp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kdran-xapp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- include "kdran-xapp.fullname" . -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kdran-xapp.claimName" -}}
{{- default (printf "%s-artifacts" (include "kdran-xapp.fullname" .)) .Values.artifactStore.existingClaim -}}
{{- end -}}

{{/* Labels of every object (xapp-std: app, chart, release, heritage). */}}
{{- define "kdran-xapp.labels" -}}
app: {{ include "kdran-xapp.app" . }}
chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
release: {{ .Release.Name }}
heritage: {{ .Release.Service }}
{{- end -}}

{{- define "kdran-xapp.selectorLabels" -}}
app: {{ include "kdran-xapp.app" . }}
release: {{ .Release.Name }}
{{- end -}}

{{/* Mount points of the Secrets inside the xApp container. */}}
{{- define "kdran-xapp.signingMount" -}}/etc/kdran/signing{{- end -}}
{{- define "kdran-xapp.tlsMount" -}}/etc/kdran/tls{{- end -}}

{{/*
Deep merge: copy every key of the second map into the first, recursing where both hold a map;
anything else (lists, scalars, false, 0, "") replaces. Mutates the first map; prints nothing.
*/}}
{{- define "kdran-xapp.mergeInto" -}}
{{- $dst := index . 0 -}}
{{- range $key, $value := index . 1 -}}
{{- $current := get $dst $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- include "kdran-xapp.mergeInto" (list $current $value) -}}
{{- else -}}
{{- $_ := set $dst $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Controls the chart derives from its values (claim name, Secret mounts), as JSON. */}}
{{- define "kdran-xapp.chartControls" -}}
{{- $controls := dict "artifact_store" (dict "pvc_claim_name" (include "kdran-xapp.claimName" .)) -}}
{{- with .Values.modelSigning -}}
{{- if .existingSecret -}}
{{- $_ := set $controls "model_signing" (dict
      "public_key_file" (printf "%s/%s" (include "kdran-xapp.signingMount" $) .publicKeyKey)
      "job_secret_name" .existingSecret
      "job_secret_key" .privateKeyKey) -}}
{{- end -}}
{{- end -}}
{{- with .Values.grpcTls -}}
{{- if .enabled -}}
{{- $_ := required "grpcTls.existingSecret is required when grpcTls.enabled is true" .existingSecret -}}
{{- $mount := include "kdran-xapp.tlsMount" $ -}}
{{- $_ := set $controls "dapps" (dict "tls" (dict
      "enabled" true
      "ca_file" (printf "%s/ca.crt" $mount)
      "cert_file" (printf "%s/tls.crt" $mount)
      "key_file" (printf "%s/tls.key" $mount)
      "server_name_override" .serverName)) -}}
{{- end -}}
{{- end -}}
{{- toJson $controls -}}
{{- end -}}

{{/*
The effective descriptor, as JSON: the shipped one, with the chart-derived controls and then
.Values.controls merged over its controls, and .Values.image over containers[0].image.
*/}}
{{- define "kdran-xapp.descriptor" -}}
{{- $descriptor := include "kdran-xapp.shippedDescriptor" . | fromJson -}}
{{- $controls := default dict $descriptor.controls -}}
{{- include "kdran-xapp.mergeInto" (list $controls (include "kdran-xapp.chartControls" . | fromJson)) -}}
{{- include "kdran-xapp.mergeInto" (list $controls (deepCopy .Values.controls)) -}}
{{- $_ := set $descriptor "controls" $controls -}}
{{- $image := (first $descriptor.containers).image -}}
{{- range $field := list "registry" "name" "tag" -}}
{{- with get $.Values.image $field -}}
{{- $_ := set $image $field . -}}
{{- end -}}
{{- end -}}
{{- toJson $descriptor -}}
{{- end -}}

{{/* The descriptor's messaging port named by the second argument, as JSON; fails when absent. */}}
{{- define "kdran-xapp.messagingPort" -}}
{{- $descriptor := index . 0 -}}
{{- $name := index . 1 -}}
{{- $found := dict -}}
{{- range $descriptor.messaging.ports -}}
{{- if eq .name $name -}}
{{- $found = . -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "the descriptor has no messaging port named %q" $name) -}}
{{- end -}}
{{- toJson $found -}}
{{- end -}}
