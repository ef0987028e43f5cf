{{- define "glint.name" -}}
{{- .Chart.Name -}}
{{- end -}}

{{- define "glint.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "glint.labels" -}}
app.kubernetes.io/name: {{ include "glint.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "glint.selectorLabels" -}}
app.kubernetes.io/name: {{ include "glint.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "glint.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "glint.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The scratch volume's size: room for `transfers` conversions at once, each up to
conversion.scratchLimit (a whole Kubernetes quantity such as 20Gi or 500M), and one
scratchLimit more for the downloads an Image's targets share (transfer::shared).
*/}}
{{- define "glint.scratchVolumeSize" -}}
{{- $limit := .Values.conversion.scratchLimit | toString -}}
{{- if not (regexMatch "^[0-9]+(k|M|G|T|Ki|Mi|Gi|Ti)?$" $limit) -}}
{{- fail (printf "conversion.scratchLimit %q is not a whole size such as 20Gi or 500M" $limit) -}}
{{- end -}}
{{- $number := regexFind "^[0-9]+" $limit -}}
{{- printf "%d%s" (mul (atoi $number) (add1 (int .Values.transfers))) (trimPrefix $number $limit) -}}
{{- end -}}
