package docker_test

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/registrytest"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// TestEnsureImagePulls pulls through the Engine from a registry: the progress lines arrive
// as the Engine sends them, the image is then present, and a tag the registry lacks is
// runtime.ErrImageUnavailable with the registry's reason.
func TestEnsureImagePulls(t *testing.T) {
	t.Parallel()
	d, sdk := engine(t)
	ctx := t.Context()
	reg := registrytest.New(t, nil)
	// An image of its own, with a layer no other image has, so the pull downloads it.
	local := "pocketmolt/pull-test:" + uniq("img")
	if err := d.BuildImage(ctx, local, map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY data /data\n"),
		"data":       []byte(rand.Text() + strings.Repeat(".", 1<<20)),
	}); err != nil {
		t.Fatal(err)
	}
	ref := reg.Host + "/pocketmolt/gateway:" + uniq("pull")
	reg.Push(t, sdk, local, ref)
	registrytest.RemoveImage(t, sdk, local)

	var lines []string
	if err := d.EnsureImage(ctx, ref, func(l string) { lines = append(lines, l) }); err != nil {
		t.Fatalf("EnsureImage(%s) = %v", ref, err)
	}
	t.Cleanup(func() { registrytest.RemoveImage(t, sdk, ref) })
	if _, err := sdk.ImageInspect(ctx, ref); err != nil {
		t.Fatalf("not present after the pull: %v", err)
	}
	joined := strings.Join(lines, "\n")
	t.Logf("progress:\n%s", joined)
	// "Downloading" lines are throttled by the Engine and a small layer may have none.
	for _, want := range []string{"Pulling from pocketmolt/gateway", "Pulling fs layer", "Download complete", "Pull complete", "Status: Downloaded newer image"} {
		if !strings.Contains(joined, want) {
			t.Errorf("progress lacks %q:\n%s", want, joined)
		}
	}

	// Present now: no pull, no progress.
	lines = nil
	if err := d.EnsureImage(ctx, ref, func(l string) { lines = append(lines, l) }); err != nil || len(lines) > 0 {
		t.Errorf("EnsureImage of a present image = %v, progress %q", err, lines)
	}

	missing := reg.Host + "/pocketmolt/gateway:absent"
	err := d.EnsureImage(ctx, missing, nil)
	if !errors.Is(err, runtime.ErrImageUnavailable) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("EnsureImage(%s) = %v, want ErrImageUnavailable saying not found", missing, err)
	}
}
