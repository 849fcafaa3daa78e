// Package stripemock runs stripe-mock, Stripe's own stateless mock of its API (it answers every
// endpoint from the OpenAPI spec with fixtures and validates request parameters), for tests on
// loopback. Start launches one per test and stops it when the test ends.
package stripemock

import (
	"bufio"
	"errors"
	"fmt"
	"go/build"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the stripe-mock release that pairs with the stripe-go in go.mod.
const Version = "v0.203.0"

const (
	installHint = "go install github.com/stripe/stripe-mock@" + Version
	// httpLine is what stripe-mock prints once its HTTP listener is open, followed by the
	// address it bound (main.go of stripe-mock).
	httpLine     = "Listening for HTTP at address: "
	startTimeout = 60 * time.Second // loading the OpenAPI spec takes ~1 s idle, more under -race on a busy machine
	outputCap    = 64 << 10         // stripe-mock prints every request; keep only the tail
)

// Start runs a stripe-mock on 127.0.0.1 for the duration of t and returns its base URL,
// "http://127.0.0.1:<port>", for StripeClientConfig.APIBase. The process is killed in
// t.Cleanup whether the test passes or fails; if it failed, its output is logged.
//
// The binary is looked up in PATH, then in $(go env GOBIN) and $(go env GOPATH)/bin. When it is
// missing the test is skipped with the install command, unless the environment variable CI is
// set, where a missing stripe-mock fails the test instead of silently testing less.
//
// stripe-mock binds port 0 itself and Start reads the port it got from its output, so there is
// no window in which another process can take a port picked in advance.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := find()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("stripemock: %v; install it with: %s", err, installHint)
		}
		t.Skipf("stripemock: %v; install it with: %s", err, installHint)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatalf("stripemock: pipe: %v", err)
	}
	// HTTPS is unused but stripe-mock would otherwise pick its default port on every
	// interface; both listeners stay on loopback.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatalf("stripemock: start %s: %v", bin, err)
	}
	pw.Close() // the child holds its own copy; EOF on pr now means it exited

	out := &tail{max: outputCap}
	addrc := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			out.add(line)
			if a, ok := strings.CutPrefix(line, httpLine); ok && !sent {
				addrc <- strings.TrimSpace(a)
				sent = true
			}
		}
		// A line longer than the buffer ends the scan; keep draining so the child never
		// blocks on a full pipe.
		_, _ = io.Copy(io.Discard, pr)
	}()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // an error means it has already exited
		<-exited
		<-readDone
		pr.Close()
		if t.Failed() {
			t.Logf("stripe-mock output (tail):\n%s", out.String())
		}
	})

	var addr string
	select {
	case addr = <-addrc:
	case <-exited:
		t.Fatalf("stripemock: %s exited before listening (%v); output:\n%s", bin, waitErr, out.String())
	case <-time.After(startTimeout):
		t.Fatalf("stripemock: %s did not report a listening address within %s; output:\n%s", bin, startTimeout, out.String())
	}
	base := "http://" + addr
	if err := waitAnswer(base, exited); err != nil {
		t.Fatalf("stripemock: %v; output:\n%s", err, out.String())
	}
	return base
}

// find returns the path of the stripe-mock binary: PATH first, then the go command's bin
// directories.
func find() (string, error) {
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p, nil
	}
	return findIn(goBinDirs())
}

// goBinDirs lists where go install puts binaries: GOBIN if set, else each GOPATH entry's bin.
func goBinDirs() []string {
	var dirs []string
	gobin, gopath, err := goEnv()
	if err != nil {
		// No go command in PATH: fall back to the default GOPATH rules.
		gopath = build.Default.GOPATH
	}
	if gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, p := range filepath.SplitList(gopath) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	return dirs
}

// findIn returns the first executable regular file named stripe-mock in dirs.
func findIn(dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, "stripe-mock")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("stripe-mock not found in PATH or in [%s]", strings.Join(dirs, ", "))
}

// goEnv asks the go command for GOBIN and GOPATH, which also honours the go env file.
func goEnv() (gobin, gopath string, err error) {
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != 2 {
		return "", "", errors.New("go env: unexpected output")
	}
	return strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1]), nil
}

// waitAnswer polls base until stripe-mock answers any HTTP request (a request without a key
// gets a 401, which is an answer), it exits, or the start timeout passes.
func waitAnswer(base string, exited <-chan struct{}) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := hc.Get(base + "/v1/customers")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from %s within %s: %w", base, startTimeout, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("exited while waiting for %s to answer", base)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tail keeps the last max bytes of whole lines written to it. It is safe for concurrent use.
type tail struct {
	mu    sync.Mutex
	max   int
	lines []string
	size  int
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	t.size += len(line) + 1
	for t.size > t.max && len(t.lines) > 1 {
		t.size -= len(t.lines[0]) + 1
		t.lines = t.lines[1:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
