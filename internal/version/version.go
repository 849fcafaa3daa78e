// Package version reports the build's version and commit, set at link time:
//
//	go build -ldflags "-X github.com/pocketmolt/pocketmolt/internal/version.Version=v1.2.3 -X github.com/pocketmolt/pocketmolt/internal/version.Commit=abc123"
package version

import "fmt"

// Version and Commit are set by -ldflags -X at build time.
var (
	Version = "dev"
	Commit  = "none"
)

// String is the one-line version shown by every binary's version subcommand.
func String(program string) string {
	return fmt.Sprintf("%s %s (commit %s)", program, Version, Commit)
}
