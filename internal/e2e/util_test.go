package e2e_test

import (
	"bufio"
	"crypto/x509"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func serialOf(c *x509.Certificate) string { return pki.SerialString(c) }

type pmdConfig = pmd.Config

func containsAll(v any, want ...string) bool {
	list, _ := v.([]any)
	for _, w := range want {
		found := false
		for _, x := range list {
			if x == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func containsPrefix(v any, prefix string) bool {
	list, _ := v.([]any)
	for _, x := range list {
		if s, ok := x.(string); ok && strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func logsOptions(follow bool, tail int) apiclient.LogsOptions {
	return apiclient.LogsOptions{Follow: follow, Tail: tail}
}

func readAll(rc io.ReadCloser) string {
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func scanLines(r io.Reader, out chan<- string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		out <- sc.Text()
	}
	close(out)
}

func waitLine(t *testing.T, lines <-chan string, sub string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended before a line with %q", sub)
			}
			if strings.Contains(l, sub) {
				return
			}
		case <-timeout:
			t.Fatalf("no line with %q", sub)
		}
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
