// Package docker is the only package that speaks to the Docker Engine. It implements the
// small interfaces the agent owns on top of the Engine's Go client.
package docker

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// Docker talks to one Docker Engine. It is safe for concurrent use.
type Docker struct {
	c *client.Client
}

// New connects to the Engine named by host ("unix:///var/run/docker.sock"), or, when host is
// empty, by the DOCKER_HOST environment as the docker CLI does. The connection is lazy: an
// Engine that is down makes later calls fail, not New.
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
