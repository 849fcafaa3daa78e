{{- /* Root CA: self-signed, made once by "pmd init", 10 years. Its SHA-256 fingerprint is pinned by enrollment tokens. */ -}}
{
	"subject": {{ toJson .Subject }},
	"issuer": {{ toJson .Subject }},
	"keyUsage": ["certSign", "crlSign"],
	"basicConstraints": {
		"isCA": true,
		"maxPathLen": 1
	}
}
