package e2e_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/registrytest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// pullProgress matches the Engine's progress lines while a pull waits on the registry.
var pullProgress = regexp.MustCompile(`^([0-9a-f]{12}|[a-z0-9.-]+): (Pulling from \S+|Pulling fs layer|Waiting|Already exists|Downloading|Verifying Checksum|Download complete)`)

// TestBotImageIsPulled creates a bot whose image is only in a registry. The registry holds the
// pull back at the manifest, so the bot is seen through the admin API as "pulling" with the
// Engine's progress; let go, the bot runs and is healthy. A second bot on an image the
// registry lacks fails with the registry's reason, and is not retried in a loop.
func TestBotImageIsPulled(t *testing.T) {
	d := engine(t)
	sdk, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sdk.Close() })

	release := make(chan struct{})
	var once sync.Once
	letGo := func() { once.Do(func() { close(release) }) }
	var absentAsked atomic.Int32 // requests for the tag the registry lacks
	reg := registrytest.New(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/manifests/absent") {
				absentAsked.Add(1)
			}
			// The Engine resolves the tag and reads the manifest, says "Pulling from", then
			// fetches the blobs it lacks: the image's config and its new layer.
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	t.Cleanup(letGo) // before the registry closes, which waits for held requests
	// The stand-in with a layer of its own, so the pull has something to download.
	local := "pocketmolt/standin-gateway:pull-" + strings.ToLower(rand.Text()[:8])
	if err := d.BuildImage(t.Context(), local, map[string][]byte{
		"Dockerfile": []byte("FROM " + testImage + "\nCOPY nonce /nonce\n"),
		"nonce":      []byte(rand.Text()),
	}); err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/pocketmolt/standin-gateway:" + strings.ToLower(rand.Text()[:8])
	reg.Push(t, sdk, local, ref)
	registrytest.RemoveImage(t, sdk, local)
	t.Cleanup(func() { sdk.ImageRemove(context.WithoutCancel(t.Context()), ref, client.ImageRemoveOptions{}) })

	p := dockerPMD(t)
	p.enrollDocker("edge-1", d, wire.Capacity{})
	p.waitStatus("edge-1", wire.HostOnline)

	req := botRequest("alice", "edge-1")
	req.Image = ref
	if _, err := p.admin().CreateBot(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	b := p.waitBot("alice", 30*time.Second, "pulling with progress", func(b wire.Bot) bool {
		return b.Status == wire.BotPulling && b.Progress != ""
	})
	// The latest line of the Engine's, which depends on what its cache already held: the
	// tag's "Pulling from …", "Pulling fs layer" or "Waiting" for the layer it lacks, or
	// "Already exists" for a base layer it has.
	if !pullProgress.MatchString(b.Progress) {
		t.Errorf("progress = %q, want a line of the Engine's pull", b.Progress)
	}
	letGo()
	b = p.waitBot("alice", 60*time.Second, "running and healthy", running)
	if b.Progress != "" || b.Image != ref {
		t.Errorf("running bot: progress %q, image %s", b.Progress, b.Image)
	}

	bad := botRequest("bob", "edge-1")
	bad.Image = reg.Host + "/pocketmolt/standin-gateway:absent"
	if _, err := p.admin().CreateBot(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	b = p.waitBot("bob", 30*time.Second, "failed", func(b wire.Bot) bool { return b.Status == wire.BotFailed })
	if !strings.Contains(b.LastError, "not found") || !strings.Contains(b.LastError, "absent") {
		t.Errorf("last error = %q, want the registry's reason", b.LastError)
	}
	// The agent passes over its bots every 200 ms here; a failed pull waits 30 s to retry.
	asked := absentAsked.Load()
	time.Sleep(2 * time.Second)
	if again := absentAsked.Load(); again != asked {
		t.Errorf("the registry was asked for the missing image %d more times within 2 s: a pull loop", again-asked)
	}
	if b := p.bot("bob"); b.Status != wire.BotFailed || b.ContainerID != "" {
		t.Errorf("bob after its failed pull: status %s, container %q", b.Status, b.ContainerID)
	}
}
