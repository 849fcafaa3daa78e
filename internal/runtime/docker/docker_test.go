package docker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
)

func TestCreateStartInspect(t *testing.T) {
	t.Parallel()
	d, sdk := engine(t)
	ctx := t.Context()
	agentID := uniq("agent")
	spec := newSpec(t, d, agentID)

	created, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if created.State != "created" || created.BotID != spec.BotID || created.SpecVersion != 1 || created.Image != testImage || created.HostPort != 0 {
		t.Errorf("created = %+v", created)
	}
	// The host's address on the bot's network, from the network's own address plan.
	botNet, err := sdk.NetworkInspect(ctx, docker.Name(spec.BotID), client.NetworkInspectOptions{})
	if err != nil || len(botNet.Network.IPAM.Config) != 1 {
		t.Fatalf("bot network: %+v, %v", botNet.Network.IPAM, err)
	}
	subnet, netGateway := botNet.Network.IPAM.Config[0].Subnet, botNet.Network.IPAM.Config[0].Gateway
	if netGateway != subnet.Addr().Next() || created.Gateway != netGateway {
		t.Errorf("subnet %s, gateway %s; a created container reports gateway %s", subnet, netGateway, created.Gateway)
	}
	if err := d.Start(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	c := waitState(t, d, created.ID, "running")
	if c.HostPort == 0 || c.StartedAt.IsZero() {
		t.Fatalf("running container = %+v, want a host port and a start time", c)
	}
	if c.Gateway != netGateway || !subnet.Contains(c.IP) || c.IP == c.Gateway {
		t.Errorf("running container: gateway %s, address %s; want gateway %s and an address in %s", c.Gateway, c.IP, netGateway, subnet)
	}
	healthz(t, c.HostPort)
	// Inside the container, the model host is the gateway of the bot's own network.
	if got := resolve(t, c.HostPort, runtime.ModelHost); got != netGateway.String() {
		t.Errorf("%s resolves to %q inside the container, want %s", runtime.ModelHost, got, netGateway)
	}

	list, err := d.List(ctx, agentID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != c.ID || list[0].HostPort != c.HostPort || list[0].State != "running" || list[0].Gateway != c.Gateway || list[0].IP != c.IP {
		t.Errorf("List = %+v, want the one running container on port %d, at %s behind %s", list, c.HostPort, c.IP, c.Gateway)
	}

	// What the Engine was told, as `docker inspect` shows it.
	ins, err := sdk.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := ins.Container
	if r.Name != "/"+docker.Name(spec.BotID) {
		t.Errorf("name = %q", r.Name)
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	gw := network.MustParsePort("18789/tcp")
	for _, b := range r.HostConfig.PortBindings[gw] {
		if b.HostIP != loopback || (b.HostPort != "" && b.HostPort != "0") {
			t.Errorf("port binding %+v, want 127.0.0.1 with an ephemeral port", b)
		}
	}
	if len(r.HostConfig.PortBindings) != 1 || len(r.HostConfig.PortBindings[gw]) != 1 {
		t.Errorf("port bindings = %+v, want only the gateway port", r.HostConfig.PortBindings)
	}
	if len(r.NetworkSettings.Ports[gw]) == 0 {
		t.Errorf("no published gateway port: %+v", r.NetworkSettings.Ports)
	}
	for p, bs := range r.NetworkSettings.Ports {
		for _, b := range bs {
			if b.HostIP != loopback {
				t.Errorf("port %s published on %s, want 127.0.0.1 only", p, b.HostIP)
			}
		}
	}
	hc := r.HostConfig
	if r.Config.User != "1000:1000" {
		t.Errorf("user = %q", r.Config.User)
	}
	if !slices.Equal(hc.CapDrop, []string{"ALL"}) || len(hc.CapAdd) != 0 {
		t.Errorf("cap drop %v add %v", hc.CapDrop, hc.CapAdd)
	}
	if !slices.ContainsFunc(hc.SecurityOpt, func(s string) bool { return strings.HasPrefix(s, "no-new-privileges") }) {
		t.Errorf("security opts %v lack no-new-privileges", hc.SecurityOpt)
	}
	if hc.Init == nil || !*hc.Init {
		t.Errorf("init = %v", hc.Init)
	}
	if hc.Memory != spec.MemoryBytes || hc.NanoCPUs != spec.NanoCPUs || hc.PidsLimit == nil || *hc.PidsLimit != spec.PIDs {
		t.Errorf("memory %d nanocpus %d pids %v", hc.Memory, hc.NanoCPUs, hc.PidsLimit)
	}
	if hc.RestartPolicy.Name != "unless-stopped" {
		t.Errorf("restart policy = %+v", hc.RestartPolicy)
	}
	if hc.Privileged {
		t.Error("privileged")
	}
	if want := []string{runtime.ModelHost + ":" + netGateway.String()}; !slices.Equal(hc.ExtraHosts, want) {
		t.Errorf("extra hosts %q, want %q", hc.ExtraHosts, want)
	}
	// What the Engine wrote in the container's /etc/hosts, read through the archive endpoint.
	if hosts := containerFile(t, sdk, c.ID, "/etc/hosts"); !slices.ContainsFunc(strings.Split(hosts, "\n"), func(l string) bool {
		return slices.Equal(strings.Fields(l), []string{netGateway.String(), runtime.ModelHost})
	}) {
		t.Errorf("/etc/hosts lacks %s %s:\n%s", netGateway, runtime.ModelHost, hosts)
	}
	if r.Config.StopTimeout == nil || *r.Config.StopTimeout != 5 {
		t.Errorf("stop timeout = %v", r.Config.StopTimeout)
	}
	wantLabels := map[string]string{runtime.LabelBot: spec.BotID, runtime.LabelSpec: "1", runtime.LabelAgent: agentID, runtime.LabelLayout: runtime.Layout}
	for k, v := range wantLabels {
		if r.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, r.Config.Labels[k], v)
		}
	}
	for k, v := range r.Config.Labels {
		for _, secret := range spec.Env {
			if strings.Contains(k, secret) || strings.Contains(v, secret) {
				t.Errorf("label %s=%s holds an environment value", k, v)
			}
		}
	}
	env := r.Config.Env
	for _, want := range []string{
		"OPENCLAW_STATE_DIR=" + docker.GatewayStateDir,
		"OPENCLAW_CONFIG_PATH=" + docker.GatewayConfigPath,
		"OPENCLAW_CONFIG_READONLY=1",
		"OPENCLAW_WORKSPACE_DIR=" + docker.GatewayWorkspaceDir,
		"HOME=" + docker.GatewayHome,
		"TMPDIR=/tmp",
		"OPENCLAW_NO_AUTO_UPDATE=1",
		"OPENCLAW_DISABLE_BONJOUR=1",
		"OPENCLAW_GATEWAY_TOKEN=" + spec.Env["OPENCLAW_GATEWAY_TOKEN"],
	} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s", want)
		}
	}
	type mnt struct {
		src string
		rw  bool
	}
	mounts := map[string]mnt{}
	for _, m := range r.Mounts {
		mounts[m.Destination] = mnt{m.Source, m.RW}
	}
	wantMounts := map[string]mnt{
		docker.GatewayStateDir:     {spec.StateDir, true},
		docker.GatewayWorkspaceDir: {spec.WorkspaceDir, true},
		docker.GatewayConfigDir:    {spec.ConfigDir, false},
	}
	if !maps.Equal(mounts, wantMounts) {
		t.Errorf("mounts = %v, want %v", mounts, wantMounts)
	}
	if !hc.ReadonlyRootfs {
		t.Error("the root filesystem is writable")
	}
	if got := hc.Tmpfs["/tmp"]; got != "rw,nosuid,nodev,mode=1777,size=67108864" || len(hc.Tmpfs) != 1 {
		t.Errorf("tmpfs = %v", hc.Tmpfs)
	}
	if lc := hc.LogConfig; lc.Type != "json-file" || lc.Config["max-size"] != "10485760" || lc.Config["max-file"] != "3" {
		t.Errorf("log config = %+v, want json-file bounded to 3 × 10 MiB", lc)
	}
	name := docker.Name(spec.BotID)
	if string(hc.NetworkMode) != name || len(r.NetworkSettings.Networks) != 1 || r.NetworkSettings.Networks[name] == nil {
		t.Errorf("network mode %q, networks %v; want only %s", hc.NetworkMode, r.NetworkSettings.Networks, name)
	}
	net, err := sdk.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if net.Network.Driver != "bridge" || net.Network.Labels[runtime.LabelBot] != spec.BotID || net.Network.Labels[runtime.LabelAgent] != agentID {
		t.Errorf("network = driver %s labels %v", net.Network.Driver, net.Network.Labels)
	}

	// The same spec again is a no-op, even while running.
	again, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != c.ID || again.State != "running" {
		t.Errorf("second Create = %s %s, want %s running", again.ID, again.State, c.ID)
	}

	// Another agent's container of that name is left alone.
	other := spec
	other.Agent = uniq("agent")
	if _, err := d.Create(ctx, other); err == nil {
		t.Error("Create over another agent's container succeeded")
	}

	// A new spec version replaces it.
	spec.SpecVersion = 2
	spec.Env["OPENCLAW_NO_AUTO_UPDATE"] = "0" // spec.Env overrides the defaults
	replaced, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if replaced.ID == c.ID || replaced.SpecVersion != 2 || replaced.State != "created" {
		t.Errorf("replaced = %+v", replaced)
	}
	if _, err := d.Inspect(ctx, c.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect(old) = %v, want ErrNotFound", err)
	}
	ins, err = sdk.ContainerInspect(ctx, replaced.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ins.Container.Config.Env, "OPENCLAW_NO_AUTO_UPDATE=0") || slices.Contains(ins.Container.Config.Env, "OPENCLAW_NO_AUTO_UPDATE=1") {
		t.Errorf("env %v: spec.Env did not override the default", ins.Container.Config.Env)
	}
}

func TestCreateConcurrent(t *testing.T) {
	t.Parallel()
	d, sdk := engine(t)
	spec := newSpec(t, d, uniq("agent"))

	ids := make([]string, 4)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			c, err := d.Create(t.Context(), spec)
			if err != nil {
				t.Error(err)
			}
			ids[i] = c.ID
		})
	}
	wg.Wait()
	if ids[0] == "" || slices.ContainsFunc(ids, func(id string) bool { return id != ids[0] }) {
		t.Errorf("ids = %v, want one container", ids)
	}
	nets, err := sdk.NetworkList(t.Context(), client.NetworkListOptions{Filters: make(client.Filters).Add("name", docker.Name(spec.BotID))})
	if err != nil {
		t.Fatal(err)
	}
	if len(nets.Items) != 1 {
		t.Errorf("%d networks, want 1", len(nets.Items))
	}
}

// The Engine at API 1.41 creates a second network of an existing name (and then cannot
// resolve the name); Create must reuse one and remove the other.
func TestCreateDuplicateNetworks(t *testing.T) {
	t.Parallel()
	d, sdk := engine(t)
	ctx := t.Context()
	spec := newSpec(t, d, uniq("agent"))
	name := docker.Name(spec.BotID)
	for range 2 {
		if _, err := sdk.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge"}); err != nil {
			t.Fatal(err)
		}
	}
	list := func() []network.Summary {
		t.Helper()
		nets, err := sdk.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
		if err != nil {
			t.Fatal(err)
		}
		return nets.Items
	}
	if n := len(list()); n != 2 {
		t.Skipf("the Engine refused a duplicate network name (%d networks): nothing to test", n)
	}
	c := createStart(t, d, spec)
	nets := list()
	if len(nets) != 1 {
		t.Fatalf("%d networks named %s after Create, want 1", len(nets), name)
	}
	ins, err := sdk.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ep := ins.Container.NetworkSettings.Networks[name]; ep == nil || ep.NetworkID != nets[0].ID {
		t.Errorf("container on %v, want network %s", ins.Container.NetworkSettings.Networks, nets[0].ID)
	}
}

// A container of an older layout is replaced, and its network with it, even at the same spec
// version: one made before layouts were labelled (one writable directory for config and
// state, a writable root), and one of layout 2 (no hosts entry for the model host).
func TestCreateReplacesAnOldLayout(t *testing.T) {
	t.Parallel()
	d, sdk := engine(t)
	tests := []struct {
		name, layout string
		hostCfg      func(spec runtime.ContainerSpec) *container.HostConfig
	}{
		{"unlabelled", "", func(spec runtime.ContainerSpec) *container.HostConfig {
			return &container.HostConfig{NetworkMode: container.NetworkMode(docker.Name(spec.BotID)), Binds: []string{spec.StateDir + ":" + docker.GatewayStateDir}}
		}},
		{"layout 2", "2", func(spec runtime.ContainerSpec) *container.HostConfig {
			return &container.HostConfig{NetworkMode: container.NetworkMode(docker.Name(spec.BotID)), ReadonlyRootfs: true, Binds: []string{
				spec.StateDir + ":" + docker.GatewayStateDir, spec.ConfigDir + ":" + docker.GatewayConfigDir + ":ro",
			}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			spec := newSpec(t, d, uniq("agent"))
			name := docker.Name(spec.BotID)
			labels := map[string]string{runtime.LabelBot: spec.BotID, runtime.LabelAgent: spec.Agent}
			oldNet, err := sdk.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: labels})
			if err != nil {
				t.Fatal(err)
			}
			labels[runtime.LabelSpec] = "1"
			if tt.layout != "" {
				labels[runtime.LabelLayout] = tt.layout
			}
			old, err := sdk.ContainerCreate(ctx, client.ContainerCreateOptions{
				Name:       name,
				Config:     &container.Config{Image: testImage, User: "1000:1000", Labels: labels},
				HostConfig: tt.hostCfg(spec),
			})
			if err != nil {
				t.Fatal(err)
			}
			if c, err := d.Inspect(ctx, old.ID); err != nil || c.Layout != tt.layout || c.SpecVersion != 1 || c.Gateway.IsValid() {
				t.Fatalf("old container = %+v, %v", c, err)
			}
			c, err := d.Create(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			if c.ID == old.ID || c.Layout != runtime.Layout || !c.Gateway.IsValid() {
				t.Errorf("Create = %+v, want a new container of layout %s with a gateway", c, runtime.Layout)
			}
			if _, err := d.Inspect(ctx, old.ID); !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("old container: %v, want it removed", err)
			}
			nets, err := sdk.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
			if err != nil {
				t.Fatal(err)
			}
			if len(nets.Items) != 1 || nets.Items[0].ID == oldNet.ID {
				t.Errorf("networks %+v, want one new network in place of %s", nets.Items, oldNet.ID)
			}
		})
	}
}

func TestCreateRejects(t *testing.T) {
	t.Parallel()
	d, _ := engine(t)
	base := newSpec(t, d, uniq("agent"))
	tests := []struct {
		name   string
		change func(*runtime.ContainerSpec)
		is     error
	}{
		{"root user", func(s *runtime.ContainerSpec) { s.User = "0:0" }, nil},
		{"root by name", func(s *runtime.ContainerSpec) { s.User = "root" }, nil},
		{"no user", func(s *runtime.ContainerSpec) { s.User = "" }, nil},
		{"bad bot id", func(s *runtime.ContainerSpec) { s.BotID = "../x" }, nil},
		{"no agent", func(s *runtime.ContainerSpec) { s.Agent = "" }, nil},
		{"config dir writable as state", func(s *runtime.ContainerSpec) { s.ConfigDir = s.StateDir }, nil},
		{"negative tmpfs", func(s *runtime.ContainerSpec) { s.TmpBytes = -1 }, nil},
		{"missing image", func(s *runtime.ContainerSpec) { s.Image = "pocketmolt/does-not-exist:1" }, runtime.ErrImageUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := base
			tt.change(&spec)
			_, err := d.Create(t.Context(), spec)
			if err == nil {
				t.Fatal("Create succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
			for _, v := range spec.Env {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error %q holds an environment value", err)
				}
			}
		})
	}
	if _, err := d.Inspect(t.Context(), docker.Name(base.BotID)); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("a rejected spec left a container: %v", err)
	}
}

func TestStopStartRestart(t *testing.T) {
	t.Parallel()
	d, _ := engine(t)
	ctx := t.Context()
	c := createStart(t, d, newSpec(t, d, uniq("agent")))

	if err := d.Stop(ctx, c.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	stopped := waitState(t, d, c.ID, "exited")
	if stopped.ExitCode != 0 || stopped.HostPort != 0 {
		t.Errorf("stopped = %+v, want exit 0 and no port", stopped)
	}
	if err := d.Stop(ctx, c.ID, time.Second); err != nil {
		t.Errorf("Stop(stopped) = %v", err)
	}
	if err := d.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	started := waitState(t, d, c.ID, "running")
	if err := d.Start(ctx, c.ID); err != nil {
		t.Errorf("Start(running) = %v", err)
	}
	healthz(t, started.HostPort)

	if err := d.Restart(ctx, c.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	restarted := waitState(t, d, c.ID, "running")
	if !restarted.StartedAt.After(started.StartedAt) {
		t.Errorf("restart did not restart: %v then %v", started.StartedAt, restarted.StartedAt)
	}
	healthz(t, restarted.HostPort)

	// A gateway that ignores SIGTERM is killed after the timeout (default: spec's 5 s).
	spec := newSpec(t, d, uniq("agent"))
	spec.Env["GATEWAY_IGNORE_SIGTERM"] = "1"
	stubborn := createStart(t, d, spec)
	healthz(t, stubborn.HostPort)
	start := time.Now()
	if err := d.Stop(ctx, stubborn.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	killed := waitState(t, d, stubborn.ID, "exited")
	if killed.ExitCode != 137 {
		t.Errorf("exit code %d, want 137 (killed)", killed.ExitCode)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Stop with a 1 s timeout took %v", took)
	}

	for name, op := range map[string]func(string) error{
		"start":   func(id string) error { return d.Start(ctx, id) },
		"stop":    func(id string) error { return d.Stop(ctx, id, time.Second) },
		"restart": func(id string) error { return d.Restart(ctx, id, time.Second) },
	} {
		if err := op(uniq("pm-gone")); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("%s(missing) = %v, want ErrNotFound", name, err)
		}
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	d, _ := engine(t)
	ctx := t.Context()
	c := createStart(t, d, newSpec(t, d, uniq("agent")))
	healthz(t, c.HostPort) // writes one "healthz" line after the two start lines

	// The gateway answers before the Engine has stored the line it printed: wait for it.
	var all string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if all = readAll(t, d, c.ID, -1); strings.Contains(all, "healthz") || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{"gateway stdout start uid=1000", "gateway stderr start", "healthz"} {
		if !strings.Contains(all, want) {
			t.Errorf("logs %q lack %q", all, want)
		}
	}
	if strings.ContainsAny(all, "\x00\x01\x02") {
		t.Errorf("logs %q hold multiplexing headers", all)
	}
	if last := readAll(t, d, c.ID, 1); strings.Count(last, "\n") != 1 {
		t.Errorf("tail 1 = %q, want one line", last)
	}

	rc, err := d.Logs(ctx, c.ID, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	readDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readDone <- sc.Err()
	}()
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", c.HostPort)); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		if l != "healthz" {
			t.Errorf("followed line %q, want healthz", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow saw no new line")
	}
	closed := make(chan error, 1)
	go func() { closed <- rc.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the follow")
	}
	select {
	case <-readDone:
	case <-time.After(5 * time.Second):
		t.Fatal("reader still blocked after Close")
	}

	if _, err := d.Logs(ctx, uniq("pm-gone"), false, -1); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Logs(missing) = %v, want ErrNotFound", err)
	}
}

func readAll(t *testing.T, d *docker.Docker, id string, tail int) string {
	t.Helper()
	rc, err := d.Logs(t.Context(), id, false, tail)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEvents(t *testing.T) {
	t.Parallel()
	d, sdk := engine(t)
	agentID := uniq("agent")
	spec := newSpec(t, d, agentID)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	evs, errc := d.Events(ctx, agentID)

	// Another agent's container must not show up.
	_ = createStart(t, d, newSpec(t, d, uniq("agent")))
	c := createStart(t, d, spec)
	if _, err := sdk.ContainerKill(ctx, c.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}

	var sawStart bool
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-evs:
			if ev.BotID != spec.BotID || ev.ContainerID != c.ID {
				t.Fatalf("event of another container: %+v", ev)
			}
			if ev.Time.IsZero() {
				t.Errorf("event without time: %+v", ev)
			}
			switch ev.Action {
			case "start":
				sawStart = true
			case "die":
				if !sawStart {
					t.Error("die before start")
				}
				if ev.ExitCode != 137 {
					t.Errorf("die exit code %d, want 137", ev.ExitCode)
				}
				cancel()
				for range evs { // closed once ctx ends
				}
				if err, ok := <-errc; ok {
					t.Errorf("error after cancel: %v", err)
				}
				return
			}
		case err := <-errc:
			t.Fatalf("events: %v", err)
		case <-timeout:
			t.Fatalf("no die event (start seen: %v)", sawStart)
		}
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	d, sdk := engine(t)
	ctx := t.Context()
	spec := newSpec(t, d, uniq("agent"))
	c := createStart(t, d, spec)

	for i := range 2 {
		if err := d.Remove(ctx, spec.BotID); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, err := d.Inspect(ctx, c.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect(removed) = %v, want ErrNotFound", err)
	}
	nets, err := sdk.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", docker.Name(spec.BotID))})
	if err != nil {
		t.Fatal(err)
	}
	if len(nets.Items) != 0 {
		t.Errorf("network left: %+v", nets.Items)
	}
	if err := d.Remove(ctx, uniq("never")); err != nil {
		t.Errorf("Remove(never created) = %v", err)
	}
}

func TestListByAgent(t *testing.T) {
	t.Parallel()
	d, _ := engine(t)
	ctx := t.Context()
	a1, a2 := uniq("agent"), uniq("agent")
	want := map[string][]string{}
	for _, a := range []string{a1, a1, a2} {
		spec := newSpec(t, d, a)
		if _, err := d.Create(ctx, spec); err != nil {
			t.Fatal(err)
		}
		want[a] = append(want[a], spec.BotID)
	}
	for _, a := range []string{a1, a2, uniq("agent")} {
		list, err := d.List(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range list {
			got = append(got, c.BotID)
			if c.State != "created" {
				t.Errorf("%s is %s, want created (List includes stopped)", c.BotID, c.State)
			}
		}
		slices.Sort(got)
		slices.Sort(want[a])
		if !slices.Equal(got, want[a]) {
			t.Errorf("List(%s) = %v, want %v", a, got, want[a])
		}
	}
}

func TestEnsureImage(t *testing.T) {
	t.Parallel()
	d, _ := engine(t)
	ctx := t.Context()
	withImage(t, d)

	var lines []string
	if err := d.EnsureImage(ctx, testImage, func(l string) { lines = append(lines, l) }); err != nil {
		t.Errorf("EnsureImage(local) = %v", err)
	}
	if len(lines) != 0 {
		t.Errorf("present image reported progress %q", lines)
	}
	err := d.EnsureImage(ctx, "pocketmolt/does-not-exist:1", func(string) {})
	if !errors.Is(err, runtime.ErrImageUnavailable) {
		t.Errorf("EnsureImage(missing) = %v, want ErrImageUnavailable", err)
	}

	// Malformed references fail before the Engine is asked: this one is not there.
	offline, err := docker.New("unix:///nonexistent/docker.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer offline.Close()
	for _, ref := range []string{"foo@sha256:zzz", "foo@sha256:abc", "Foo:Bar", "foo:bad tag", ""} {
		start := time.Now()
		err := offline.EnsureImage(ctx, ref, nil)
		if !errors.Is(err, runtime.ErrImageUnavailable) {
			t.Errorf("EnsureImage(%q) = %v, want ErrImageUnavailable", ref, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("EnsureImage(%q) took %v", ref, took)
		}
	}
	// An Engine that is not there is not "image unavailable".
	if err := offline.EnsureImage(ctx, "foo:1", nil); err == nil || errors.Is(err, runtime.ErrImageUnavailable) {
		t.Errorf("EnsureImage on no Engine = %v, want a connection error", err)
	}
}

func TestBuildImageErrors(t *testing.T) {
	t.Parallel()
	d, _ := engine(t)
	tests := map[string]map[string][]byte{
		"no Dockerfile":  {"gateway": []byte("x")},
		"failed step":    {"Dockerfile": []byte("FROM scratch\nCOPY missing /missing\n")},
		"bad Dockerfile": {"Dockerfile": []byte("NOT-AN-INSTRUCTION\n")},
		"escaping name":  {"Dockerfile": []byte("FROM scratch\n"), "../x": nil},
	}
	for name, files := range tests {
		t.Run(name, func(t *testing.T) {
			tag := uniq("pocketmolt/runtime-test-fail:")
			if err := d.BuildImage(t.Context(), tag, files); err == nil {
				t.Error("BuildImage succeeded")
			}
		})
	}
}
