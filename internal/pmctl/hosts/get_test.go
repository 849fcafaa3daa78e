package hosts

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// A host whose agent runs every bot as its own user says so to operators.
func TestHostViewSharedBotUID(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, shared := range []bool{false, true} {
		h := &wire.Host{Name: "laptop", Status: wire.HostOnline, CreatedAt: now, Facts: &wire.HostFacts{OS: "linux", SharedBotUID: shared}}
		var b bytes.Buffer
		if err := output.Print(&b, true, output.Table, h, hostView(h, now, true)); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(strings.Join(strings.Fields(b.String()), " "), "bot uids: SHARED"); got != shared {
			t.Errorf("shared=%t: view\n%s", shared, b.String())
		}
	}
}
