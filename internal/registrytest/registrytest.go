// Package registrytest gives tests an image registry on this machine, which otherwise reaches
// none: an in-memory OCI registry (go-containerregistry's) on 127.0.0.1, which the Docker
// Engine treats as insecure by default and so pulls from over plain HTTP, and a way to push
// local images into it through the Engine.
package registrytest

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/moby/moby/client"
)

// Registry is a running test registry.
type Registry struct {
	// Host is its host:port, the first part of an image reference.
	Host string
}

// New starts a registry that closes when the test ends. wrap, if given, wraps its handler,
// e.g. to hold some requests back.
func New(t testing.TB, wrap func(http.Handler) http.Handler) *Registry {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://")}
}

// Push tags the Engine's image src as ref (which must name this registry) and pushes it,
// then removes the tag, so that ref is in the registry and not on the Engine.
func (r *Registry) Push(t testing.TB, sdk *client.Client, src, ref string) {
	t.Helper()
	ctx := t.Context()
	if _, err := sdk.ImageTag(ctx, client.ImageTagOptions{Source: src, Target: ref}); err != nil {
		t.Fatal(err)
	}
	resp, err := sdk.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: "e30="}) // "{}": no credentials
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		if m.Error != nil {
			t.Fatalf("push %s: %s", ref, m.Error.Message)
		}
	}
	RemoveImage(t, sdk, ref)
}

// RemoveImage removes an image reference from the Engine, failing the test if it cannot.
func RemoveImage(t testing.TB, sdk *client.Client, ref string) {
	t.Helper()
	if _, err := sdk.ImageRemove(context.WithoutCancel(t.Context()), ref, client.ImageRemoveOptions{}); err != nil {
		t.Fatalf("remove %s: %v", ref, err)
	}
}
