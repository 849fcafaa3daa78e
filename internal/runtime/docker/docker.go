// Package docker is the only package that speaks to the Docker Engine. It implements the
// small interfaces the agent owns (agent.Runtime) on top of the Engine's Go client; nothing
// Docker-typed leaves it.
//
// Each bot gets a container and a bridge network, both named Name(botID) and labelled with
// runtime.LabelBot and runtime.LabelAgent; the container also carries runtime.LabelSpec and
// runtime.LabelLayout.
package docker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// NamePrefix starts the name of every container and network made for a bot.
const NamePrefix = "pm-"

// Name is the name of botID's container and of its bridge network.
func Name(botID string) string { return NamePrefix + botID }

// Docker talks to one Docker Engine. It is safe for concurrent use.
type Docker struct {
	c *client.Client
	// bots serialises Create and Remove per bot: the Engine (API < 1.44) happily creates
	// two networks with one name when two creates race.
	bots keyedMutex
	// netMu serialises picking a subnet and creating a network; pool is where subnets come
	// from (DefaultSubnetPool when unset).
	netMu sync.Mutex
	pool  netip.Prefix
}

// New connects to the Engine named by host ("unix:///var/run/docker.sock"), or, when host is
// empty, by the DOCKER_HOST environment as the docker CLI does. The connection is lazy: an
// Engine that is down makes later calls fail, not New. The API version is negotiated with
// the Engine on first use.
func New(host string) (*Docker, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Docker{c: c}, nil
}

// Close releases the client's connections.
func (d *Docker) Close() error { return d.c.Close() }

// Version returns the Engine's version, or an error saying why it cannot be reached.
func (d *Docker) Version(ctx context.Context) (string, error) {
	v, err := d.c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return "", fmt.Errorf("docker version: %w", err)
	}
	return v.Version, nil
}

// engineErr turns the Engine's not-found into runtime.ErrNotFound, so callers branch on our
// sentinel and never on an errdefs type.
func engineErr(err error) error {
	if err == nil {
		return nil
	}
	if cerrdefs.IsNotFound(err) && !errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("%w: %w", runtime.ErrNotFound, err)
	}
	return err
}

// keyedMutex is a set of mutexes, one per key, that exist only while in use.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedEntry)
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()

	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
