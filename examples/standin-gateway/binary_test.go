package main

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// buildStatic builds the binary the image ships: CGO_ENABLED=0.
func buildStatic(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "standin-gateway")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBinary builds the static binary, checks it needs no dynamic loader (so it runs FROM
// scratch), runs it, talks to it and stops it with SIGTERM.
func TestBinary(t *testing.T) {
	bin := buildStatic(t)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v program header: not static", p.Type)
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Error("binary has a .dynamic section: not static")
	}
	f.Close()

	dir := t.TempDir()
	port := freePort(t)
	cfg := strings.Replace(localConfig, `"mode":"local"`, `"mode":"local","port":`+itoa(port), 1)
	if err := os.WriteFile(filepath.Join(dir, "openclaw.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	const token = "binary-test-token"
	cmd := exec.Command(bin, "gateway", "--port", itoa(port), "--bind", "loopback")
	// A minimal environment like FROM scratch: no HOME, no PATH.
	cmd.Env = []string{"OPENCLAW_STATE_DIR=" + dir, "OPENCLAW_GATEWAY_TOKEN=" + token, "STANDIN_STARTUP_DELAY=0s"}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var logged []string
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("exited before logging; stderr: %s", stderr.String())
		}
		logged = append(logged, l)
		if !strings.Contains(l, "gateway listening on 127.0.0.1:"+itoa(port)) {
			t.Fatalf("first line %q is not the start line", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no start line within 10 s")
	}

	base := "http://127.0.0.1:" + itoa(port)
	if got := getStatus(t, base+"/healthz"); got != 200 {
		t.Errorf("healthz %d", got)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v1/chat/completions",
		strings.NewReader(`{"model":"openclaw","messages":[{"role":"user","content":"private words"}]}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cc chatCompletion
	err = json.NewDecoder(resp.Body).Decode(&cc)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || cc.Choices[0].Message.Content != "echo: private words (turn 1)" {
		t.Errorf("chat: %d %+v %v", resp.StatusCode, cc, err)
	}

	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		logged = append(logged, l)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; stderr: %s", err, stderr.String())
		}
		if d := time.Since(sent); d > 2*time.Second {
			t.Errorf("took %v to exit", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("still running 2 s after SIGTERM")
	}

	all := strings.Join(logged, "\n")
	for _, want := range []string{`"path":"/healthz","status":200`, `"path":"/v1/chat/completions","status":200`, "gateway stopped"} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %s:\n%s", want, all)
		}
	}
	for _, secret := range []string{token, "private words"} {
		if strings.Contains(all, secret) {
			t.Errorf("log leaks %q", secret)
		}
	}
}

// TestBinaryUpstream runs the static binary with the config the platform writes: the model
// token comes from PM_MODEL_TOKEN in the process environment, the turn goes to the stand-in
// provider, and neither the token nor the conversation reaches the log. Without
// PM_MODEL_TOKEN the start is refused with 78, as OpenClaw refuses it.
func TestBinaryUpstream(t *testing.T) {
	bin := buildStatic(t)
	p := startProvider(t)
	dir := t.TempDir()
	cfg := upstreamConfig("anthropic", "claude-sonnet-4-6", p.URL(), "")
	if err := os.WriteFile(filepath.Join(dir, "openclaw.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	missing := exec.CommandContext(t.Context(), bin, "gateway", "--port", itoa(freePort(t)), "--bind", "loopback")
	missing.Env = []string{"OPENCLAW_STATE_DIR=" + dir}
	out, err := missing.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitConfig || !strings.Contains(string(out), "PM_MODEL_TOKEN") {
		t.Errorf("without PM_MODEL_TOKEN: %v %s", err, out)
	}

	port := freePort(t)
	cmd := exec.Command(bin, "gateway", "--port", itoa(port), "--bind", "loopback")
	cmd.Env = []string{"OPENCLAW_STATE_DIR=" + dir, "STANDIN_STARTUP_DELAY=0s", wire.EnvModelToken + "=" + modelToken}
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://127.0.0.1:" + itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the binary did not listen within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v1/chat/completions",
		strings.NewReader(`{"model":"openclaw","stream":true,"messages":[{"role":"user","content":"private words"}]}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if text, _, done, _ := clientAnswer(t, b, true); resp.StatusCode != 200 || !done || text != "stand-in claude-sonnet-4-6: private words" {
		t.Errorf("chat: %d %s", resp.StatusCode, b)
	}
	calls := p.Calls()
	if len(calls) != 1 || calls[0].APIKey != modelToken {
		t.Errorf("the provider got %+v", calls)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	for _, secret := range []string{modelToken, "private words"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log leaks %q:\n%s", secret, logs.String())
		}
	}
}
