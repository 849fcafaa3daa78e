package docker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// Start starts the container id (an id or a name). Starting a running container is not an
// error; a container that is gone is runtime.ErrNotFound.
func (d *Docker) Start(ctx context.Context, id string) error {
	if _, err := d.c.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", id, engineErr(err))
	}
	return nil
}

// Stop sends the container its stop signal and kills it if it has not exited after timeout
// (rounded up to seconds); timeout <= 0 uses the container's own stop timeout, set by Create
// from ContainerSpec.StopTimeout. Stopping a stopped container is not an error; a container
// that is gone is runtime.ErrNotFound. ctx must outlast timeout.
func (d *Docker) Stop(ctx context.Context, id string, timeout time.Duration) error {
	if _, err := d.c.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: timeoutSecs(timeout)}); err != nil {
		return fmt.Errorf("stop container %s: %w", id, engineErr(err))
	}
	return nil
}

// Restart stops the container as Stop does, then starts it; a stopped container is just
// started. A container that is gone is runtime.ErrNotFound.
func (d *Docker) Restart(ctx context.Context, id string, timeout time.Duration) error {
	if _, err := d.c.ContainerRestart(ctx, id, client.ContainerRestartOptions{Timeout: timeoutSecs(timeout)}); err != nil {
		return fmt.Errorf("restart container %s: %w", id, engineErr(err))
	}
	return nil
}

// timeoutSecs is timeout for the Engine: nil (the container's own) when not positive.
func timeoutSecs(timeout time.Duration) *int {
	if timeout <= 0 {
		return nil
	}
	s := seconds(timeout)
	return &s
}

// Remove force-removes botID's container (killing it if it runs) and then its network. A
// bot with neither is not an error.
func (d *Docker) Remove(ctx context.Context, botID string) error {
	unlock := d.bots.lock(botID)
	defer unlock()
	return d.remove(ctx, botID)
}

// remove is Remove with the bot's lock held.
func (d *Docker) remove(ctx context.Context, botID string) error {
	name := Name(botID)
	_, err := d.c.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container for bot %s: %w", botID, err)
	}
	nets, err := d.networks(ctx, name)
	if err != nil {
		return fmt.Errorf("remove network for bot %s: %w", botID, err)
	}
	for _, id := range nets {
		if _, err := d.c.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove network for bot %s: %w", botID, err)
		}
	}
	return nil
}

// Inspect reports the container id (an id or a name); runtime.ErrNotFound when it is gone.
func (d *Docker) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	res, err := d.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return runtime.Container{}, fmt.Errorf("inspect container %s: %w", id, engineErr(err))
	}
	return toContainer(res.Container), nil
}

// List returns the containers, in every state, labelled as owned by agentID. Each is
// inspected, so the values are those Inspect gives; one removed meanwhile is left out.
func (d *Docker) List(ctx context.Context, agentID string) ([]runtime.Container, error) {
	res, err := d.c.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", runtime.LabelAgent+"="+agentID),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers of agent %s: %w", agentID, err)
	}
	out := make([]runtime.Container, 0, len(res.Items))
	for _, s := range res.Items {
		ins, err := d.c.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list containers of agent %s: inspect %s: %w", agentID, s.ID, err)
		}
		out = append(out, toContainer(ins.Container))
	}
	return out, nil
}

// toContainer is the Engine's inspect answer as the agent sees it.
func toContainer(r container.InspectResponse) runtime.Container {
	c := runtime.Container{ID: r.ID, RestartCount: r.RestartCount}
	if r.Config != nil {
		c.BotID = r.Config.Labels[runtime.LabelBot]
		c.SpecVersion, _ = strconv.ParseInt(r.Config.Labels[runtime.LabelSpec], 10, 64)
		c.Layout = r.Config.Labels[runtime.LabelLayout]
		c.User = r.Config.User
		c.Image = r.Config.Image
	}
	if s := r.State; s != nil {
		c.State = string(s.Status)
		c.ExitCode = s.ExitCode
		c.OOMKilled = s.OOMKilled
		if t, err := time.Parse(time.RFC3339Nano, s.StartedAt); err == nil && t.Year() > 1 {
			c.StartedAt = t
		}
	}
	if r.NetworkSettings != nil {
		c.HostPort = hostPort(r.NetworkSettings.Ports[gatewayPort])
		if ep := botEndpoint(r.NetworkSettings.Networks, c.BotID); ep != nil {
			c.Gateway, c.IP = ep.Gateway, ep.IPAddress
		}
	}
	// A container that is not running has no address; its gateway is still where its
	// hosts file points runtime.ModelHost.
	if !c.Gateway.IsValid() && r.HostConfig != nil {
		c.Gateway = modelHostAddr(r.HostConfig.ExtraHosts)
	}
	return c
}

// botEndpoint is the container's endpoint on botID's own network, or on its only network.
func botEndpoint(nets map[string]*network.EndpointSettings, botID string) *network.EndpointSettings {
	if ep := nets[Name(botID)]; ep != nil {
		return ep
	}
	if len(nets) == 1 {
		for _, ep := range nets {
			return ep
		}
	}
	return nil
}

// hostPort is the loopback host port among bindings, or the first one, or 0.
func hostPort(bindings []network.PortBinding) int {
	port := 0
	for _, b := range bindings {
		p, err := strconv.Atoi(b.HostPort)
		if err != nil || p == 0 {
			continue
		}
		if b.HostIP == loopback {
			return p
		}
		if port == 0 {
			port = p
		}
	}
	return port
}
