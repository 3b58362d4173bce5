{{/* Names */}}

{{- define "netpol-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "netpol-guard.fullname" -}}
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

{{/* Names below are derived from the fullname with a suffix; keep them within 63 characters. */}}
{{- define "netpol-guard.suffixed" -}}
{{- $base := include "netpol-guard.fullname" .root | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base .suffix }}
{{- end }}

{{- define "netpol-guard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The webhook Service (port 443 → 9443), also the name the serving certificate is for. */}}
{{- define "netpol-guard.serviceName" -}}
{{- include "netpol-guard.fullname" . }}
{{- end }}

{{/* The headless Service the agents resolve to reach every webhook replica. */}}
{{- define "netpol-guard.flowsServiceName" -}}
{{- include "netpol-guard.suffixed" (dict "root" . "suffix" "flows") }}
{{- end }}

{{- define "netpol-guard.webhookConfigName" -}}
{{- include "netpol-guard.fullname" . }}
{{- end }}

{{- define "netpol-guard.serviceAccountName" -}}
{{- default (include "netpol-guard.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "netpol-guard.agentServiceAccountName" -}}
{{- default (include "netpol-guard.suffixed" (dict "root" . "suffix" "agent")) .Values.agent.serviceAccount.name }}
{{- end }}

{{/* The Secret the webhook serves from: cert-manager's target, the self-signed store, or the user's. */}}
{{- define "netpol-guard.tlsSecretName" -}}
{{- if eq .Values.tls.mode "existingSecret" }}
{{- required "tls.existingSecret.name is required with tls.mode=existingSecret" .Values.tls.existingSecret.name }}
{{- else if eq .Values.tls.mode "selfSigned" }}
{{- default (include "netpol-guard.suffixed" (dict "root" . "suffix" "tls")) .Values.tls.selfSigned.secretName }}
{{- else }}
{{- include "netpol-guard.suffixed" (dict "root" . "suffix" "tls") }}
{{- end }}
{{- end }}

{{- define "netpol-guard.servingCertificateName" -}}
{{- include "netpol-guard.suffixed" (dict "root" . "suffix" "serving") }}
{{- end }}

{{/* Labels */}}

{{/* Labels on every object. */}}
{{- define "netpol-guard.labels" -}}
app.kubernetes.io/name: {{ include "netpol-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "netpol-guard.metaLabels" . }}
{{- end }}

{{/* The labels that are not selectors (pod templates add them to the selector labels). */}}
{{- define "netpol-guard.metaLabels" -}}
helm.sh/chart: {{ include "netpol-guard.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: netpol-guard
{{- end }}

{{- define "netpol-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "netpol-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "netpol-guard.agentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "netpol-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{/* Images */}}

{{- define "netpol-guard.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .default .image.tag | toString) }}
{{- end }}
{{- end }}

{{- define "netpol-guard.image" -}}
{{- include "netpol-guard.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) }}
{{- end }}

{{/* Security: the pod and container contexts every netpol-guard pod uses (the agent adds NET_ADMIN and its user). */}}

{{- define "netpol-guard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "netpol-guard.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Validation that the schema cannot express. */}}
{{- define "netpol-guard.validate" -}}
{{- if and (eq .Values.tls.mode "existingSecret") (not .Values.tls.existingSecret.caBundle) }}
{{- fail "tls.existingSecret.caBundle is required with tls.mode=existingSecret: the API server needs the CA that signed the Secret's certificate" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if and .Values.hubble.tls.enabled (not .Values.hubble.tls.secretName) }}
{{- fail "hubble.tls.secretName is required with hubble.tls.enabled" }}
{{- end }}
{{- if and .Values.flows.goldmane.enabled (not .Values.flows.goldmane.clientSecret) }}
{{- fail "flows.goldmane.clientSecret is required with flows.goldmane.enabled: Goldmane serves mutual TLS only" }}
{{- end }}
{{- if and .Values.terminationGracePeriodSeconds (lt (int .Values.terminationGracePeriodSeconds) (add .Values.shutdownDelaySeconds .Values.gracefulTimeoutSeconds | int)) }}
{{- fail "terminationGracePeriodSeconds must be at least shutdownDelaySeconds + gracefulTimeoutSeconds, or the kubelet kills the webhook before it has drained" }}
{{- end }}
{{- end }}

{{- define "netpol-guard.terminationGracePeriodSeconds" -}}
{{- if .Values.terminationGracePeriodSeconds }}
{{- .Values.terminationGracePeriodSeconds }}
{{- else }}
{{- add .Values.shutdownDelaySeconds .Values.gracefulTimeoutSeconds 5 }}
{{- end }}
{{- end }}

{{/* The AdmissionReview the helm test sends: a dry-run CREATE of a default-deny. */}}
{{- define "netpol-guard.testReview" -}}
{{- /* .uid is derived from the release and revision, so `helm template` is reproducible. */}}
{{- $gvk := dict "group" "networking.k8s.io" "version" "v1" "kind" "NetworkPolicy" }}
{{- $gvr := dict "group" "networking.k8s.io" "version" "v1" "resource" "networkpolicies" }}
{{- $policy := dict "apiVersion" "networking.k8s.io/v1" "kind" "NetworkPolicy" "metadata" (dict "name" "default-deny" "namespace" "netpol-guard-helm-test") "spec" (dict "podSelector" (dict) "policyTypes" (list "Ingress" "Egress")) }}
{{- $request := dict "uid" .uid "kind" $gvk "resource" $gvr "requestKind" $gvk "requestResource" $gvr "name" "default-deny" "namespace" "netpol-guard-helm-test" "operation" "CREATE" "userInfo" (dict "username" "helm-test") "object" $policy "dryRun" true "options" (dict "apiVersion" "meta.k8s.io/v1" "kind" "CreateOptions" "dryRun" (list "All")) }}
{{- dict "apiVersion" "admission.k8s.io/v1" "kind" "AdmissionReview" "request" $request | toJson }}
{{- end }}
