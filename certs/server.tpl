{{- /* Server: pmd's listeners. SANs are the DNS names and IPs clients dial plus the URI pocketmolt://server. */ -}}
{{- if not .SANs }}{{ fail "server certificate needs SANs" }}{{ end -}}
{
	"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }},
{{- if typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}
	"keyUsage": ["keyEncipherment", "digitalSignature"],
{{- else }}
	"keyUsage": ["digitalSignature"],
{{- end }}
	"extKeyUsage": ["serverAuth"]
}
