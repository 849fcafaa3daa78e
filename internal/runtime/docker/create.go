package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// Paths inside the gateway container. ContainerSpec.StateDir is mounted read-write on the
// gateway's state dir (its SQLite files and OAuth tokens) and ContainerSpec.WorkspaceDir on the
// workspace beneath it; ContainerSpec.ConfigDir, holding openclaw.json, is mounted read-only
// on a directory of its own, so the gateway can read its config and never change it. The
// root filesystem is read-only; /tmp is a tmpfs.
const (
	GatewayHome         = "/home/node"
	GatewayStateDir     = GatewayHome + "/.openclaw"
	GatewayWorkspaceDir = GatewayStateDir + "/workspace"
	GatewayConfigDir    = "/etc/openclaw"
	GatewayConfigPath   = GatewayConfigDir + "/openclaw.json"
	GatewayTmpDir       = "/tmp"
)

// Defaults for the bounds a ContainerSpec leaves zero. The tmpfs counts against the
// container's memory; the log takes at most DefaultLogMaxFiles × DefaultLogMaxBytes of the
// host's disk.
const (
	DefaultTmpBytes    = 64 << 20
	DefaultLogMaxBytes = 10 << 20
	DefaultLogMaxFiles = 3
)

// DefaultStopTimeout is the container's stop timeout when the spec gives none.
const DefaultStopTimeout = 30 * time.Second

// gatewayPort is runtime.GatewayPort as the Engine names it.
var gatewayPort = network.MustParsePort(strconv.Itoa(runtime.GatewayPort) + "/tcp")

// loopback is the only address the gateway port is published on.
var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// botIDPattern keeps bot ids to what Docker accepts in a container name after NamePrefix.
var botIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// defaultEnv is the gateway's environment before spec.Env, which may override any of it.
func defaultEnv() map[string]string {
	return map[string]string{
		"OPENCLAW_STATE_DIR":       GatewayStateDir,
		"OPENCLAW_CONFIG_PATH":     GatewayConfigPath,
		"OPENCLAW_CONFIG_READONLY": "1",
		"OPENCLAW_WORKSPACE_DIR":   GatewayWorkspaceDir,
		"OPENCLAW_NO_AUTO_UPDATE":  "1",
		"OPENCLAW_DISABLE_BONJOUR": "1",
		// A uid with no passwd entry in the image gets HOME=/ from the Engine.
		"HOME":   GatewayHome,
		"TMPDIR": GatewayTmpDir,
	}
}

// Create creates (but does not start) the bot's container and, if it does not exist yet,
// its bridge network, both named Name(spec.BotID). It is idempotent: a container of that
// name with the same spec version and runtime.Layout is returned as it is; one with another
// version is removed (forcibly) and created anew, and one of another layout is removed with
// its network. A container of that name owned by another agent is
// an error and is left alone. Create fails with runtime.ErrImageUnavailable when
// spec.Image is not present (it never pulls: see EnsureImage). spec.Env reaches only the
// container's environment, never its labels or an error message.
func (d *Docker) Create(ctx context.Context, spec runtime.ContainerSpec) (runtime.Container, error) {
	if err := validateSpec(spec); err != nil {
		return runtime.Container{}, fmt.Errorf("create container for bot %s: %w", spec.BotID, err)
	}
	unlock := d.bots.lock(spec.BotID)
	defer unlock()

	c, done, err := d.existing(ctx, spec)
	if err != nil || done {
		return c, err
	}
	if _, err := d.c.ImageInspect(ctx, spec.Image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return runtime.Container{}, fmt.Errorf("create container for bot %s: image %s: %w", spec.BotID, spec.Image, runtime.ErrImageUnavailable)
		}
		return runtime.Container{}, fmt.Errorf("create container for bot %s: inspect image: %w", spec.BotID, err)
	}
	gw, err := d.ensureNetwork(ctx, spec)
	if err != nil {
		return runtime.Container{}, fmt.Errorf("create network for bot %s: %w", spec.BotID, err)
	}
	cfg, hostCfg := containerConfig(spec, gw)
	res, err := d.c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       Name(spec.BotID),
		Config:     cfg,
		HostConfig: hostCfg,
	})
	if err != nil {
		return runtime.Container{}, fmt.Errorf("create container for bot %s: %w", spec.BotID, err)
	}
	c, err = d.Inspect(ctx, res.ID)
	if err != nil {
		return runtime.Container{}, fmt.Errorf("create container for bot %s: %w", spec.BotID, err)
	}
	return c, nil
}

// existing looks at a container already named for the bot. done is true when Create has
// nothing left to do (same spec) or must fail (err); false when it should create anew.
func (d *Docker) existing(ctx context.Context, spec runtime.ContainerSpec) (c runtime.Container, done bool, err error) {
	name := Name(spec.BotID)
	res, err := d.c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return runtime.Container{}, false, nil
	case err != nil:
		return runtime.Container{}, true, fmt.Errorf("create container for bot %s: inspect existing: %w", spec.BotID, err)
	}
	var labels map[string]string
	if res.Container.Config != nil {
		labels = res.Container.Config.Labels
	}
	if owner := labels[runtime.LabelAgent]; owner != spec.Agent {
		return runtime.Container{}, true, fmt.Errorf("create container for bot %s: container %s belongs to agent %q", spec.BotID, name, owner)
	}
	if labels[runtime.LabelLayout] != runtime.Layout {
		if err := d.remove(ctx, spec.BotID); err != nil {
			return runtime.Container{}, true, fmt.Errorf("create container for bot %s: remove layout %q: %w", spec.BotID, labels[runtime.LabelLayout], err)
		}
		return runtime.Container{}, false, nil
	}
	if labels[runtime.LabelSpec] == strconv.FormatInt(spec.SpecVersion, 10) {
		return toContainer(res.Container), true, nil
	}
	if _, err := d.c.ContainerRemove(ctx, res.Container.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return runtime.Container{}, true, fmt.Errorf("create container for bot %s: remove old spec %s: %w", spec.BotID, labels[runtime.LabelSpec], err)
	}
	return runtime.Container{}, false, nil
}

// validateSpec rejects what would make an unsafe or unnamed container. Its errors never
// quote spec.Env values.
func validateSpec(spec runtime.ContainerSpec) error {
	switch {
	case !botIDPattern.MatchString(spec.BotID):
		return fmt.Errorf("invalid bot id %q", spec.BotID)
	case spec.Agent == "":
		return errors.New("no agent id")
	case spec.Image == "":
		return errors.New("no image")
	case isRoot(spec.User):
		return fmt.Errorf("user %q: the gateway must run as a non-root uid:gid", spec.User)
	case spec.MemoryBytes < 0 || spec.NanoCPUs < 0 || spec.PIDs < 0 || spec.StopTimeout < 0 ||
		spec.TmpBytes < 0 || spec.LogMaxBytes < 0 || spec.LogMaxFiles < 0:
		return errors.New("negative resource limit")
	case spec.ConfigDir != "" && (spec.ConfigDir == spec.StateDir || spec.ConfigDir == spec.WorkspaceDir):
		return errors.New("the config directory must be apart from the writable ones")
	}
	for k := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("invalid environment variable name %q", k)
		}
	}
	return nil
}

// isRoot reports whether user ("uid[:gid]" or "name[:group]") is empty or names root, which
// is what the Engine would run an empty user as.
func isRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	u = strings.TrimSpace(u)
	if u == "" || u == "root" {
		return true
	}
	n, err := strconv.ParseUint(u, 10, 32)
	return err == nil && n == 0
}

// containerConfig is spec as the Engine's create request, for a container on a network whose
// gateway is gw.
func containerConfig(spec runtime.ContainerSpec, gw netip.Addr) (*container.Config, *container.HostConfig) {
	env := defaultEnv()
	maps.Copy(env, spec.Env)
	envList := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		envList = append(envList, k+"="+env[k])
	}

	stop := spec.StopTimeout
	if stop == 0 {
		stop = DefaultStopTimeout
	}
	stopSecs := seconds(stop)

	cfg := &container.Config{
		Image:        spec.Image,
		User:         spec.User,
		Env:          envList,
		ExposedPorts: network.PortSet{gatewayPort: {}},
		Labels: map[string]string{
			runtime.LabelBot:    spec.BotID,
			runtime.LabelSpec:   strconv.FormatInt(spec.SpecVersion, 10),
			runtime.LabelAgent:  spec.Agent,
			runtime.LabelLayout: runtime.Layout,
		},
		StopTimeout: &stopSecs,
	}

	var mounts []mount.Mount
	if spec.StateDir != "" {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: spec.StateDir, Target: GatewayStateDir})
	}
	if spec.WorkspaceDir != "" {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: spec.WorkspaceDir, Target: GatewayWorkspaceDir})
	}
	if spec.ConfigDir != "" {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: spec.ConfigDir, Target: GatewayConfigDir, ReadOnly: true})
	}

	init := true
	hostCfg := &container.HostConfig{
		NetworkMode: container.NetworkMode(Name(spec.BotID)),
		// HostPort "" asks for an ephemeral port; the address keeps it off every other
		// interface.
		PortBindings:  network.PortMap{gatewayPort: {{HostIP: loopback, HostPort: ""}}},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		CapDrop:       []string{"ALL"},
		SecurityOpt:   []string{"no-new-privileges:true"},
		Init:          &init,
		Mounts:        mounts,
		// Nothing but the mounts above and /tmp is writable: the image cannot be changed,
		// and what a bot writes is where the agent measures it.
		ReadonlyRootfs: true,
		// The bot reaches its agent's model endpoint by name at its own network's gateway,
		// where the agent listens for this bot alone.
		ExtraHosts: []string{modelHostEntry(gw)},
		Tmpfs: map[string]string{
			GatewayTmpDir: "rw,nosuid,nodev,mode=1777,size=" + strconv.FormatInt(orDefault(spec.TmpBytes, DefaultTmpBytes), 10),
		},
		// The Engine keeps a container's output on the host's disk: bound it.
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": strconv.FormatInt(orDefault(spec.LogMaxBytes, DefaultLogMaxBytes), 10),
			"max-file": strconv.FormatInt(orDefault(int64(spec.LogMaxFiles), DefaultLogMaxFiles), 10),
		}},
		Resources: container.Resources{
			Memory:   spec.MemoryBytes,
			NanoCPUs: spec.NanoCPUs,
		},
	}
	if spec.PIDs > 0 {
		pids := spec.PIDs
		hostCfg.PidsLimit = &pids
	}
	return cfg, hostCfg
}

// modelHostEntry is the container's hosts entry naming gw runtime.ModelHost, as the Engine
// writes extra hosts: "name:address".
func modelHostEntry(gw netip.Addr) string { return runtime.ModelHost + ":" + gw.String() }

// modelHostAddr is the address of runtime.ModelHost among a container's extra hosts.
func modelHostAddr(extra []string) netip.Addr {
	for _, e := range extra {
		name, addr, ok := strings.Cut(e, ":")
		if !ok {
			name, addr, ok = strings.Cut(e, "=")
		}
		if a, err := netip.ParseAddr(addr); ok && err == nil && name == runtime.ModelHost {
			return a
		}
	}
	return netip.Addr{}
}

func orDefault(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

// seconds rounds d up to whole seconds, the Engine's unit for timeouts.
func seconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(s)
}

// ensureNetwork makes sure the bot has exactly one bridge network, creating it if needed,
// and returns its gateway. The Engine at API < 1.44 does not refuse a second network of the
// same name, and inspecting by an ambiguous name fails, so networks are found by listing
// and duplicates left by a race elsewhere are removed.
func (d *Docker) ensureNetwork(ctx context.Context, spec runtime.ContainerSpec) (netip.Addr, error) {
	name := Name(spec.BotID)
	nets, err := d.networks(ctx, name)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(nets) > 0 {
		for _, extra := range nets[1:] {
			if _, err := d.c.NetworkRemove(ctx, extra, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
				return netip.Addr{}, fmt.Errorf("remove duplicate network %s: %w", extra, err)
			}
		}
		return d.ensureBridgeName(ctx, nets[0], spec)
	}
	return d.createNetwork(ctx, name, map[string]string{
		runtime.LabelBot:   spec.BotID,
		runtime.LabelAgent: spec.Agent,
	})
}

// networks returns the ids of the networks named exactly name, oldest first.
func (d *Docker) networks(ctx context.Context, name string) ([]string, error) {
	res, err := d.c.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return nil, err
	}
	items := slices.DeleteFunc(res.Items, func(n network.Summary) bool { return n.Name != name })
	slices.SortFunc(items, func(a, b network.Summary) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	ids := make([]string, len(items))
	for i, n := range items {
		ids[i] = n.ID
	}
	return ids, nil
}
