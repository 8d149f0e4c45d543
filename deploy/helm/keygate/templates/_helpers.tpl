{{- define "keygate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keygate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "keygate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keygate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keygate.labels" -}}
{{ include "keygate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "keygate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "keygate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The TLS Secret both listeners serve, if any. */}}
{{- define "keygate.tlsSecret" -}}
{{- if .Values.tls.existingSecret -}}
{{- .Values.tls.existingSecret -}}
{{- else if .Values.tls.certManager.enabled -}}
{{- printf "%s-tls" (include "keygate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "keygate.tlsOn" -}}
{{- if or (include "keygate.tlsSecret" .) .Values.tls.selfSigned -}}true{{- end -}}
{{- end -}}

{{- define "keygate.scheme" -}}
{{- if include "keygate.tlsOn" . -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/* Refuse value sets that would run keygate unsafely or lose data. */}}
{{- define "keygate.check" -}}
{{- if and (not (include "keygate.tlsOn" .)) (not .Values.allowPlainHTTP) -}}
{{- fail "keygate listens on the pod network and refuses plain HTTP there: set tls.existingSecret, or tls.certManager.enabled with an issuer, or tls.selfSigned for a trial; allowPlainHTTP only when a TLS-terminating mesh or proxy sits in front" -}}
{{- end -}}
{{- if and .Values.tls.existingSecret .Values.tls.certManager.enabled -}}
{{- fail "tls: set existingSecret or certManager.enabled, not both" -}}
{{- end -}}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) -}}
{{- fail "tls.certManager.issuerRef.name: name the cert-manager Issuer or ClusterIssuer that signs keygate's certificate" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.database.existingSecret) -}}
{{- fail "replicaCount > 1 needs a shared PostgreSQL database: set database.existingSecret to a Secret holding its postgres:// URL (SQLite is one replica's)" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.kek) -}}
{{- fail "replicaCount > 1 needs a KEK every replica can open: set kek to a cloud KMS URL (awskms://, gcpkms://, azurekeyvault://, hashivault://)" -}}
{{- end -}}
{{- if and (not .Values.persistence.enabled) (or (not .Values.database.existingSecret) (not .Values.kek)) -}}
{{- fail "persistence.enabled=false loses the SQLite database or the master key file at every restart: set database.existingSecret and kek, or keep persistence on" -}}
{{- end -}}
{{- if hasPrefix "base64key://" .Values.kek -}}
{{- fail "kek: a base64key:// URL holds the key itself and would sit in clear in the Deployment; use a cloud KMS URL" -}}
{{- end -}}
{{- if .Values.serviceMonitor.enabled -}}
{{- if not .Values.serviceMonitor.tokenSecret.name -}}
{{- fail "serviceMonitor.tokenSecret.name: /metrics needs an admin credential with metrics.read, kept in a Secret" -}}
{{- end -}}
{{- end -}}
{{- end -}}
