package docker_test

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
)

var _ agent.Runtime = (*docker.Docker)(nil)

// testImage is the stand-in gateway image the tests build FROM scratch, tagged for this run
// alone so that TestMain removes only its own.
var testImage = "pocketmolt/runtime-test:" + uniq("run-")

// image builds testImage once per test binary; TestMain removes it.
var image struct {
	once  sync.Once
	built bool
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if image.built {
		if c, err := client.New(client.FromEnv); err == nil {
			// Other runs may still use the image; a refusal is fine.
			_, _ = c.ImageRemove(context.Background(), testImage, client.ImageRemoveOptions{PruneChildren: true})
			_ = c.Close()
		}
	}
	os.Exit(code)
}

// engine returns a Docker on the default Engine and a raw SDK client for assertions, or
// skips the test when no Engine answers (fails instead when CI=true).
func engine(t *testing.T) (*docker.Docker, *client.Client) {
	t.Helper()
	d, err := docker.New("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := d.Version(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker Engine unreachable and CI=true: %v", err)
		}
		t.Skipf("Docker Engine unreachable, skipping: %v", err)
	}
	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return d, c
}

// withImage makes sure testImage is built.
func withImage(t *testing.T, d *docker.Docker) {
	t.Helper()
	image.once.Do(func() {
		image.err = buildTestImage(d)
		image.built = image.err == nil
	})
	if image.err != nil {
		t.Fatalf("build %s: %v", testImage, image.err)
	}
}

func buildTestImage(d *docker.Docker) error {
	dir, err := os.MkdirTemp("", "pm-gateway-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "gateway")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/gateway")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return d.BuildImage(ctx, testImage, map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY gateway /gateway\nEXPOSE 18789\nENTRYPOINT [\"/gateway\"]\n"),
		"gateway":    data,
	})
}

// uniq is a short random id, so concurrent runs never share a bot or agent.
func uniq(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// newSpec is a spec for a fresh bot of agentID, removed when the test ends.
func newSpec(t *testing.T, d *docker.Docker, agentID string) runtime.ContainerSpec {
	t.Helper()
	withImage(t, d)
	cfg, state, ws := t.TempDir(), t.TempDir(), t.TempDir()
	spec := runtime.ContainerSpec{
		BotID:       uniq("bot"),
		Agent:       agentID,
		SpecVersion: 1,
		Image:       testImage,
		Env: map[string]string{
			"OPENCLAW_GATEWAY_TOKEN": uniq("token-secret-"),
			"ANTHROPIC_API_KEY":      uniq("sk-ant-secret-"),
		},
		ConfigDir:    cfg,
		StateDir:     state,
		WorkspaceDir: ws,
		MemoryBytes:  64 << 20,
		NanoCPUs:     500_000_000,
		PIDs:         64,
		User:         "1000:1000",
		StopTimeout:  5 * time.Second,
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Remove(ctx, spec.BotID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return spec
}

// createStart creates and starts spec's container and waits until its gateway answers
// (before that, it would die of SIGTERM instead of handling it).
func createStart(t *testing.T, d *docker.Docker, spec runtime.ContainerSpec) runtime.Container {
	t.Helper()
	ctx := t.Context()
	c, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	c = waitState(t, d, c.ID, "running")
	healthz(t, c.HostPort)
	return c
}

// waitState polls Inspect until the container is in state.
func waitState(t *testing.T, d *docker.Docker, id, state string) runtime.Container {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := d.Inspect(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State == state {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s is %s, want %s", id, c.State, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// healthz waits for the gateway's /healthz on 127.0.0.1:port to answer 200.
func healthz(t *testing.T, port int) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	deadline := time.Now().Add(15 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
}

// resolve asks the stand-in gateway listening on 127.0.0.1:port what name resolves to inside
// its container.
func resolve(t *testing.T, port int, name string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/resolve?name=%s", port, url.QueryEscape(name)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("resolve %s in the container: %s %s %v", name, resp.Status, b, err)
	}
	return string(b)
}

// containerFile is the file at path inside the container id, read through the Engine's
// archive endpoint (what docker cp does).
func containerFile(t *testing.T, sdk *client.Client, id, path string) string {
	t.Helper()
	res, err := sdk.CopyFromContainer(t.Context(), id, client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		t.Fatalf("copy %s from container %s: %v", path, id, err)
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	if _, err := tr.Next(); err != nil {
		t.Fatalf("copy %s from container %s: %v", path, id, err)
	}
	b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
