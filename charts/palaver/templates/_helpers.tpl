{{/* Names and labels shared by every template. */}}

{{- define "palaver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name; the release name alone when it already contains the chart name. */}}
{{- define "palaver.fullname" -}}
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

{{- define "palaver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: immutable in a Deployment, so nothing version-dependent. */}}
{{- define "palaver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "palaver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "palaver.labels" -}}
helm.sh/chart: {{ include "palaver.chart" . }}
{{ include "palaver.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: palaver
{{- end -}}

{{- define "palaver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "palaver.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "palaver.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
Rule groups of one alerts file, with runbook_url prefixed by alerts.runbookBaseUrl.
The files hold repository-relative URLs (docs/runbooks.md#anchor) because the operator embeds
them as they are; the base turns them into links an Alertmanager receiver can open.
Usage: include "palaver.ruleGroups" (list $ "files/alerts/x.rules.yaml")
*/}}
{{- define "palaver.ruleGroups" -}}
{{- $root := index . 0 -}}
{{- $doc := $root.Files.Get (index . 1) | fromYaml -}}
{{- $base := $root.Values.alerts.runbookBaseUrl -}}
{{- range $group := $doc.groups -}}
{{- range $rule := $group.rules -}}
{{- if and $base $rule.annotations $rule.annotations.runbook_url -}}
{{- $_ := set $rule.annotations "runbook_url" (printf "%s%s" $base $rule.annotations.runbook_url) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $doc.groups -}}
{{- end -}}
