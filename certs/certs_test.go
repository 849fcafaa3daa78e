package certs

import (
	"crypto/x509"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/x509util"
)

func TestFS(t *testing.T) {
	byName := map[string]string{
		RootFile:         Root(),
		IntermediateFile: Intermediate(),
		ServerFile:       Server(),
		AdminFile:        Admin(),
		AgentFile:        Agent(),
	}
	names, err := fs.Glob(FS(), "*.tpl")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(byName) {
		t.Errorf("FS has %q, want the %d named templates", names, len(byName))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := fs.ReadFile(FS(), name)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != byName[name] {
				t.Errorf("FS %s differs from its accessor", name)
			}
			if err := x509util.ValidateTemplate(b); err != nil {
				t.Errorf("ValidateTemplate: %v", err)
			}
		})
	}
}

func TestTemplatesRender(t *testing.T) {
	signer, err := keyutil.GenerateSigner("EC", "P-256", 0)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner, err := keyutil.GenerateSigner("RSA", "", 2048)
	if err != nil {
		t.Fatal(err)
	}
	sans := []string{"pmd.example.com", "10.0.0.1", "pocketmolt://server"}
	tests := []struct {
		name      string
		tmpl      string
		sans      []string
		rsa       bool
		isCA      bool
		pathLen   int
		keyUsage  x509.KeyUsage
		extUsages []x509.ExtKeyUsage
	}{
		{name: "root", tmpl: Root(), isCA: true, pathLen: 1, keyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign},
		{name: "intermediate", tmpl: Intermediate(), isCA: true, pathLen: 0, keyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign},
		{name: "server", tmpl: Server(), sans: sans, keyUsage: x509.KeyUsageDigitalSignature, extUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{name: "admin", tmpl: Admin(), sans: []string{"pocketmolt://admin/alice"}, keyUsage: x509.KeyUsageDigitalSignature, extUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{name: "agent", tmpl: Agent(), sans: []string{"pocketmolt://agent/host-1"}, keyUsage: x509.KeyUsageDigitalSignature, extUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{name: "agent with RSA key", tmpl: Agent(), sans: []string{"pocketmolt://agent/host-1"}, rsa: true, keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, extUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := signer
			if tt.rsa {
				key = rsaSigner
			}
			// The request asks for other names; templates must not copy them.
			csr, err := x509util.CreateCertificateRequest("evil", []string{"evil.example.com", "pocketmolt://admin/root"}, key)
			if err != nil {
				t.Fatal(err)
			}
			data := x509util.CreateTemplateData("cn-"+tt.name, tt.sans)
			c, err := x509util.NewCertificate(csr, x509util.WithTemplate(tt.tmpl, data))
			if err != nil {
				t.Fatalf("NewCertificate: %v", err)
			}
			got := c.GetCertificate()
			if got.Subject.CommonName != "cn-"+tt.name {
				t.Errorf("CommonName = %q", got.Subject.CommonName)
			}
			if got.IsCA != tt.isCA || (tt.isCA && got.MaxPathLen != tt.pathLen) {
				t.Errorf("IsCA = %v, MaxPathLen = %d", got.IsCA, got.MaxPathLen)
			}
			if got.KeyUsage != tt.keyUsage {
				t.Errorf("KeyUsage = %v, want %v", got.KeyUsage, tt.keyUsage)
			}
			if !slices.Equal(got.ExtKeyUsage, tt.extUsages) {
				t.Errorf("ExtKeyUsage = %v, want %v", got.ExtKeyUsage, tt.extUsages)
			}
			var gotSANs []string
			gotSANs = append(gotSANs, got.DNSNames...)
			for _, ip := range got.IPAddresses {
				gotSANs = append(gotSANs, ip.String())
			}
			for _, u := range got.URIs {
				gotSANs = append(gotSANs, u.String())
			}
			if !slices.Equal(gotSANs, tt.sans) {
				t.Errorf("SANs = %q, want %q", gotSANs, tt.sans)
			}
		})
	}
}

func TestLeafTemplatesNeedSANs(t *testing.T) {
	signer, err := keyutil.GenerateSigner("EC", "P-256", 0)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509util.CreateCertificateRequest("x", nil, signer)
	if err != nil {
		t.Fatal(err)
	}
	for name, tmpl := range map[string]string{"server": Server(), "admin": Admin(), "agent": Agent()} {
		t.Run(name, func(t *testing.T) {
			_, err := x509util.NewCertificate(csr, x509util.WithTemplate(tmpl, x509util.CreateTemplateData("x", nil)))
			if err == nil || !strings.Contains(err.Error(), "certificate needs") {
				t.Errorf("NewCertificate error = %v, want the template's fail message", err)
			}
		})
	}
}
