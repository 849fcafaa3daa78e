{{- /* Intermediate CA: signed by the root, 5 years; signs every leaf. Path length 0: it cannot make further CAs. */ -}}
{
	"subject": {{ toJson .Subject }},
	"keyUsage": ["certSign", "crlSign"],
	"basicConstraints": {
		"isCA": true,
		"maxPathLen": 0
	}
}
