// Package certs holds the x509util templates (go.step.sm/crypto/x509util syntax, as used by
// step-ca) for every certificate pmd's CA makes: root, intermediate, server, admin and agent.
//
// Templates see the usual x509util data: .Subject, .SANs, .Insecure.CR (the request, whose
// public key is the only part the leaf templates use) and .Insecure.User. Validity, serial
// numbers and key identifiers are set by internal/pki, not here.
package certs

import (
	"embed"
	"io/fs"
)

// Template file names inside FS.
const (
	RootFile         = "root.tpl"
	IntermediateFile = "intermediate.tpl"
	ServerFile       = "server.tpl"
	AdminFile        = "admin.tpl"
	AgentFile        = "agent.tpl"
)

//go:embed *.tpl
var files embed.FS

//go:embed root.tpl
var root string

//go:embed intermediate.tpl
var intermediate string

//go:embed server.tpl
var server string

//go:embed admin.tpl
var admin string

//go:embed agent.tpl
var agent string

// FS returns all templates, named by the *File constants.
func FS() fs.FS { return files }

// Root returns the template of the self-signed root CA (path length 1).
func Root() string { return root }

// Intermediate returns the template of the intermediate CA (path length 0) that signs leaves.
func Intermediate() string { return intermediate }

// Server returns the template of pmd's server certificate (ExtKeyUsage serverAuth only).
func Server() string { return server }

// Admin returns the template of an operator's client certificate for pmctl (clientAuth only).
func Admin() string { return admin }

// Agent returns the template of a host's client certificate for pmagent (clientAuth only).
func Agent() string { return agent }
