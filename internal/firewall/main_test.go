package firewall

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the hostile program the namespace tests build, once they are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if hostileBin != "" {
		os.RemoveAll(filepath.Dir(hostileBin))
	}
	os.Exit(code)
}
