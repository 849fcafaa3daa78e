{{- /* Admin client: pmctl. Identity is the URI SAN pocketmolt://admin/<name>. The subject and SANs come only from pmd, never from a request. */ -}}
{{- if not .SANs }}{{ fail "admin certificate needs an identity" }}{{ end -}}
{
	"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }},
{{- if typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}
	"keyUsage": ["keyEncipherment", "digitalSignature"],
{{- else }}
	"keyUsage": ["digitalSignature"],
{{- end }}
	"extKeyUsage": ["clientAuth"]
}
