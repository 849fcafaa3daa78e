{{- /* Agent client: pmagent, from the host's CSR. Identity is the URI SAN pocketmolt://agent/<host-id>; the CSR's own subject and SANs are ignored (only its public key is used). */ -}}
{{- if not .SANs }}{{ fail "agent certificate needs an identity" }}{{ end -}}
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
