package e2e_test

import (
	"crypto/x509"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/pki"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func serialOf(c *x509.Certificate) string { return pki.SerialString(c) }
