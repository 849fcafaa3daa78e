package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Defaults of the bot manager.
const (
	DefaultBotInterval = 2 * time.Second
	defaultStartWait   = 120 * time.Second
	defaultStopWait    = 30 * time.Second
	// pullRetry is how long a bot whose image could not be had waits before trying again.
	pullRetry = 30 * time.Second
)

// Bots runs the bots pmd wants on this host: it converges the engine's containers to the
// desired set, probes the gateways, and reports states and events. It is safe for
// concurrent use.
type Bots struct {
	rt       Runtime
	dir      string // <state-dir>/bots
	agentID  string
	log      *slog.Logger
	interval time.Duration
	probe    *http.Client
	proxy    *http.Transport // to the gateways, shared so connections are reused
	now      func() time.Time
	uids     *uids

	mu       sync.Mutex
	desired  *wire.DesiredBots // nil until pmd sent a set: until then nothing is changed
	states   map[string]*botState
	observed bool // the engine was read at least once
	engine   string
	notify   func(wire.Events)
	kick     chan struct{}
	queue    []wire.Events // reports waiting for pmd
	sending  bool          // a drain goroutine is delivering them

	// models serves the bots' model endpoints (nil: none); see models.go.
	models *Models

	// fw fences bots in (nil: no firewall); see firewall.go.
	fw        Firewall
	fwEvery   time.Duration
	fwAt      time.Time // last check
	fwErr     error     // why no container may be created or started now
	fwFailing bool
}

type botState struct {
	wire.BotState
	nextPull time.Time
	logsTail string
	disk     diskReading
	// failure is the last error logged for the bot, so that one that persists is logged once.
	failure string
	// gateway and ip are the addresses of the bot's network while its container exists:
	// where its model endpoint listens, and the one address it answers.
	gateway, ip netip.Addr
}

// memEvery is how often a running bot's memory use is read: a stats call costs the engine
// more than an inspect.
const memEvery = 10 * time.Second

// NewBots returns a bot manager for the agent with the given host id.
// Each bot runs as a uid of its own from DefaultBotUIDBase (see SetUIDBase).
func NewBots(rt Runtime, stateDir, agentID string, log *slog.Logger) *Bots {
	return &Bots{
		rt: rt, dir: filepath.Join(stateDir, "bots"), agentID: agentID, log: log,
		interval: DefaultBotInterval, now: time.Now, uids: newUIDs(),
		probe:  &http.Client{Timeout: time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 3, IdleConnTimeout: time.Minute}},
		proxy:  &http.Transport{ResponseHeaderTimeout: 5 * time.Minute, IdleConnTimeout: 30 * time.Second, MaxIdleConnsPerHost: 4},
		states: map[string]*botState{},
		kick:   make(chan struct{}, 1),
	}
}

// SetInterval changes how often bots are converged and probed.
func (m *Bots) SetInterval(d time.Duration) {
	if d > 0 {
		m.interval = d
	}
}

// SetUIDBase sets the first of the BotUIDRange uids the bots get, one each (see
// DefaultBotUIDBase). Call it before Run; bots that have a uid keep it.
func (m *Bots) SetUIDBase(base int) error {
	if err := ValidBotUIDBase(base); err != nil {
		return err
	}
	m.uids.base = base
	return nil
}

// SetSharedUID makes every bot run as the agent's own uid:gid, owning their directories,
// for an agent that can neither run as root nor be given CAP_CHOWN (a laptop). Bots are then
// not isolated from each other or from the agent's user: one can read another's files and
// secrets. It is refused for an agent running as root, whose bots would run as root. Call it
// before Run.
func (m *Bots) SetSharedUID(on bool) error {
	if on && os.Getuid() == 0 {
		return errors.New("bot-shared-uid: pmagent runs as root, so each bot gets a uid of its own; a shared uid would be root's")
	}
	m.uids.shared = on
	return nil
}

// SharedUID reports whether bots share the agent's uid (SetSharedUID).
func (m *Bots) SharedUID() bool { return m.uids.shared }

// SetNotify sets where events go (the current pmd session); nil drops them.
func (m *Bots) SetNotify(f func(wire.Events)) {
	m.mu.Lock()
	m.notify = f
	m.mu.Unlock()
}

// SetDesired replaces the desired set and converges soon.
func (m *Bots) SetDesired(set wire.DesiredBots) {
	m.mu.Lock()
	m.desired = &set
	m.mu.Unlock()
	m.Kick()
}

// Kick asks for a convergence now.
func (m *Bots) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Snapshot returns every bot's state, and whether the engine has been read, so that pmd may
// take a bot missing from the list as gone.
func (m *Bots) Snapshot() ([]wire.BotState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]wire.BotState, 0, len(m.states))
	for _, s := range m.states {
		out = append(out, s.BotState)
	}
	slices.SortFunc(out, func(a, b wire.BotState) int { return strings.Compare(a.ID, b.ID) })
	return out, m.observed && m.engine == ""
}

// Run converges and probes until ctx ends, and watches the engine's events.
func (m *Bots) Run(ctx context.Context) {
	go m.watch(ctx)
	go m.memory(ctx)
	go m.disk(ctx)
	for {
		m.step(ctx)
		t := time.NewTimer(m.wait())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-m.kick:
			t.Stop()
		}
	}
}

// fastInterval is how often bots are probed while one is being pulled or started, so that
// "running" is seen soon after the gateway starts rather than an interval later.
const fastInterval = 100 * time.Millisecond

func (m *Bots) wait() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.states {
		if s.Status == wire.BotStarting || s.Status == wire.BotPulling || s.Status == wire.BotPending {
			return min(fastInterval, m.interval)
		}
	}
	return m.interval
}

// maxQueued bounds the reports waiting for pmd; beyond it they are dropped, since every
// heartbeat carries every state anyway.
const maxQueued = 64

// drain delivers queued reports to pmd one at a time, in order, and ends when none are left.
func (m *Bots) drain() {
	for {
		m.mu.Lock()
		f := m.notify
		if len(m.queue) == 0 || f == nil {
			m.queue, m.sending = nil, false
			m.mu.Unlock()
			return
		}
		ev := m.queue[0]
		m.queue = m.queue[1:]
		m.mu.Unlock()
		f(ev)
	}
}

// watch turns engine events into reports and prompt convergence, re-subscribing after the
// engine goes away.
func (m *Bots) watch(ctx context.Context) {
	for ctx.Err() == nil {
		evs, errs := m.rt.Events(ctx, m.agentID)
	loop:
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-evs:
				if !ok {
					break loop
				}
				m.event(e)
			case err, ok := <-errs:
				if ok && err != nil && ctx.Err() == nil {
					m.log.Debug("engine events ended", "error", err.Error())
				}
				break loop
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.interval):
		}
	}
}

func (m *Bots) event(e runtime.Event) {
	var action, detail string
	switch e.Action {
	case "die":
		action, detail = wire.EventDied, "exit code "+strconv.Itoa(e.ExitCode)
	case "oom":
		action = wire.EventOOMKilled
	case "destroy":
		action = wire.EventRemoved
	default:
		return
	}
	m.log.Info("bot container event", "bot_id", e.BotID, "action", action, "detail", detail)
	m.emit([]wire.BotEvent{{BotID: e.BotID, Action: action, Detail: detail, Time: e.Time}}, nil)
	m.Kick()
}

// emit sends events and changed states to pmd without blocking the caller.
func (m *Bots) emit(evs []wire.BotEvent, states []wire.BotState) {
	if len(evs) == 0 && len(states) == 0 {
		return
	}
	m.mu.Lock()
	if m.notify == nil || len(m.queue) >= maxQueued {
		m.mu.Unlock()
		return
	}
	m.queue = append(m.queue, wire.Events{Events: evs, Bots: states})
	start := !m.sending
	m.sending = true
	m.mu.Unlock()
	if start {
		go m.drain()
	}
}

// step makes one pass: read the engine, converge to the desired set, probe.
func (m *Bots) step(ctx context.Context) {
	m.checkFirewall(ctx)
	containers, err := m.rt.List(ctx, m.agentID)
	if err != nil {
		m.engineDown(err)
		return
	}
	m.mu.Lock()
	m.engine = ""
	desired := m.desired
	m.mu.Unlock()
	// Only once every container found is in the states may a report say the list is
	// complete: pmd deletes the records of deleted bots missing from a complete list.
	defer func() {
		m.mu.Lock()
		m.observed = true
		m.mu.Unlock()
	}()
	byBot := map[string]runtime.Container{}
	for _, c := range containers {
		byBot[c.BotID] = c
	}
	var evs []wire.BotEvent
	var changed []wire.BotState
	var tmu sync.Mutex
	track := func(id string, before wire.BotState) {
		m.mu.Lock()
		after := m.states[id].BotState
		m.mu.Unlock()
		tmu.Lock()
		defer tmu.Unlock()
		if before.Status != after.Status || before.Health != after.Health || before.ContainerID != after.ContainerID || before.LastError != after.LastError {
			changed = append(changed, after)
			if before.Status != after.Status || before.Health != after.Health {
				evs = append(evs, wire.BotEvent{BotID: id, Action: wire.EventStatus, Detail: describeChange(before, after), Time: m.now()})
			}
		}
	}

	if desired == nil {
		// Until pmd says what it wants, report what runs and change nothing.
		parallel(len(containers), func(i int) {
			c := containers[i]
			before := m.state(c.BotID).BotState
			m.observe(ctx, c.BotID, c, defaultStartWait)
			track(c.BotID, before)
		})
	} else {
		want := map[string]bool{}
		for _, spec := range desired.Bots {
			want[spec.ID] = true
		}
		// Bots are independent: one slow to probe or to start must not hold up the others.
		parallel(len(desired.Bots), func(i int) {
			spec := desired.Bots[i]
			before := m.state(spec.ID).BotState
			c, ok := byBot[spec.ID]
			var cp *runtime.Container
			if ok {
				cp = &c
			}
			m.ensure(ctx, spec, cp)
			track(spec.ID, before)
		})
		kept := map[string]bool{} // containers that could not be removed
		for id := range byBot {
			if !want[id] && !m.remove(ctx, id) {
				kept[id] = true
			}
		}
		m.mu.Lock()
		for id := range m.states {
			if !want[id] {
				delete(m.states, id)
			}
		}
		m.mu.Unlock()
		m.syncModels(desired.Bots)
		// A bot's directories go only once no container of it is left to write in them.
		for _, id := range desired.Purge {
			if !want[id] && !kept[id] && validID(id) {
				if err := m.purge(id); err != nil {
					m.log.Error("purge bot workspace", "bot_id", id, "error", err.Error())
				}
			}
		}
	}
	m.emit(evs, changed)
}

// syncModels gives the model endpoints every wanted bot's access and its container's
// addresses (none while it has no container).
func (m *Bots) syncModels(specs []wire.BotSpec) {
	if m.models == nil {
		return
	}
	bots := make([]ModelBot, 0, len(specs))
	m.mu.Lock()
	for _, spec := range specs {
		b := ModelBot{ID: spec.ID, Access: spec.Model}
		if s := m.states[spec.ID]; s != nil && s.ContainerID != "" {
			b.Gateway, b.IP = s.gateway, s.ip
		}
		bots = append(bots, b)
	}
	m.mu.Unlock()
	m.models.Sync(bots)
}

// SetModels gives the bots their model endpoints; call it before Run.
func (m *Bots) SetModels(ms *Models) { m.models = ms }

// stepParallelism bounds how many bots one pass works on at once.
const stepParallelism = 8

// parallel calls f(0..n-1), at most stepParallelism at a time, and waits for all.
func parallel(n int, f func(i int)) {
	sem := make(chan struct{}, stepParallelism)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

func describeChange(a, b wire.BotState) string {
	s := a.Status + " → " + b.Status
	if b.Health != "" || a.Health != "" {
		s += " (health " + or(a.Health, "-") + " → " + or(b.Health, "-") + ")"
	}
	return s
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// engineDown marks every bot unknown and keeps everything as it is.
func (m *Bots) engineDown(err error) {
	m.mu.Lock()
	first := m.engine == ""
	m.engine = err.Error()
	var changed []wire.BotState
	for _, s := range m.states {
		if s.Status != wire.BotUnknown {
			s.Status, s.Health, s.MemoryUsage = wire.BotUnknown, "", 0
			s.LastError = "container engine unavailable: " + err.Error()
			changed = append(changed, s.BotState)
		}
	}
	m.mu.Unlock()
	if first {
		m.log.Error("container engine unavailable", "error", err.Error())
	}
	m.emit(nil, changed)
}

// state returns a bot's state record, making it if needed.
func (m *Bots) state(id string) *botState {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.states[id]
	if !ok {
		s = &botState{BotState: wire.BotState{ID: id, Status: wire.BotPending}}
		m.states[id] = s
	}
	return s
}

// update changes a bot's state under the lock.
func (m *Bots) update(id string, f func(s *botState)) {
	s := m.state(id)
	m.mu.Lock()
	f(s)
	if s.Status != wire.BotRunning {
		s.MemoryUsage = 0 // a reading of a container that is not running is stale
	}
	m.mu.Unlock()
}

// ensure converges one bot: only what differs is done.
func (m *Bots) ensure(ctx context.Context, spec wire.BotSpec, c *runtime.Container) {
	log := m.log.With("bot_id", spec.ID)
	m.update(spec.ID, func(s *botState) { s.Version = spec.Version })
	root, bot, err := m.openBot(spec.ID)
	if err != nil {
		m.failLogged(spec.ID, err.Error(), log)
		return
	}
	defer root.Close()
	defer bot.Close()
	o, err := m.uids.owner(root, bot, spec.ID)
	if err != nil {
		m.failLogged(spec.ID, err.Error(), log)
		return
	}
	// A container of an older layout, or running as another user, goes before its
	// directories change.
	if c != nil && (c.Layout != runtime.Layout || c.User != o.user()) {
		log.Info("bot container of another layout or user, recreating it", "layout", c.Layout, "want_layout", runtime.Layout, "user", c.User, "want_user", o.user())
		if err := m.rt.Remove(ctx, spec.ID); err != nil {
			m.failLogged(spec.ID, err.Error(), log)
			return
		}
		c = nil
	}
	if err := m.prepare(bot, spec, o, c == nil); err != nil {
		m.failLogged(spec.ID, "bot files: "+err.Error(), log)
		return
	}
	m.update(spec.ID, func(s *botState) { s.failure = "" })
	if c != nil && c.SpecVersion != spec.Version {
		log.Info("bot spec changed, recreating container", "from", c.SpecVersion, "to", spec.Version)
		if err := m.rt.Remove(ctx, spec.ID); err != nil {
			m.fail(spec.ID, err.Error())
			return
		}
		c = nil
	}
	if spec.Running {
		if problem := m.heldForDisk(spec.ID); problem != "" {
			m.holdStopped(ctx, spec, c, problem, log)
			return
		}
	}
	stopWait := durationOr(spec.StopTimeout, defaultStopWait)
	if c == nil {
		if !spec.Running {
			m.update(spec.ID, func(s *botState) {
				s.Status, s.Health, s.ContainerID, s.HostPort, s.StartedAt, s.LastError = wire.BotStopped, "", "", 0, nil, ""
			})
			return
		}
		if err := m.firewallErr(); err != nil {
			m.fail(spec.ID, err.Error())
			return
		}
		created, ok := m.create(ctx, spec, o, log)
		if !ok {
			return
		}
		c = &created
	} else {
		switch {
		case spec.Running && c.State != "running" && c.State != "restarting":
			if err := m.firewallErr(); err != nil {
				m.fail(spec.ID, err.Error())
				return
			}
			log.Info("bot container not running, starting it", "state", c.State)
			if err := m.rt.Start(ctx, c.ID); err != nil {
				m.fail(spec.ID, err.Error())
				return
			}
			if nc, err := m.rt.Inspect(ctx, c.ID); err == nil {
				c = &nc
			}
		case !spec.Running && (c.State == "running" || c.State == "restarting"):
			log.Info("stopping bot")
			if err := m.rt.Stop(ctx, c.ID, stopWait); err != nil {
				m.fail(spec.ID, err.Error())
				return
			}
			c.State = "exited"
		}
	}
	if !spec.Running {
		m.update(spec.ID, func(s *botState) {
			s.Status, s.Health, s.ContainerID, s.HostPort, s.StartedAt, s.LastError = wire.BotStopped, "", c.ID, 0, nil, ""
		})
		return
	}
	m.observe(ctx, spec.ID, *c, durationOr(spec.StartTimeout, defaultStartWait))
}

// create pulls the image if needed, then creates and starts the bot's container.
func (m *Bots) create(ctx context.Context, spec wire.BotSpec, o owner, log *slog.Logger) (runtime.Container, bool) {
	s := m.state(spec.ID)
	m.mu.Lock()
	wait := s.nextPull.After(m.now())
	m.mu.Unlock()
	if wait {
		return runtime.Container{}, false
	}
	m.update(spec.ID, func(s *botState) { s.Status, s.Progress = wire.BotPulling, "" })
	err := m.rt.EnsureImage(ctx, spec.Image, func(line string) {
		m.update(spec.ID, func(s *botState) { s.Progress = line })
	})
	if err != nil {
		log.Error("bot image unavailable", "image", spec.Image, "error", err.Error())
		m.update(spec.ID, func(s *botState) {
			s.Status, s.Progress, s.LastError = wire.BotFailed, "", err.Error()
			s.nextPull = m.now().Add(pullRetry)
		})
		return runtime.Container{}, false
	}
	m.update(spec.ID, func(s *botState) { s.Progress = "" })
	p := m.paths(spec.ID)
	c, err := m.rt.Create(ctx, runtime.ContainerSpec{
		BotID: spec.ID, Agent: m.agentID, SpecVersion: spec.Version, Image: spec.Image, Env: spec.Env,
		ConfigDir: p.config, StateDir: p.state, WorkspaceDir: p.workspace,
		MemoryBytes: spec.Resources.MemoryBytes, NanoCPUs: int64(spec.Resources.CPUs * 1e9), PIDs: spec.Resources.PIDs,
		User:        o.user(),
		StopTimeout: durationOr(spec.StopTimeout, defaultStopWait),
	})
	if err != nil {
		m.fail(spec.ID, err.Error())
		log.Error("create bot container", "error", err.Error())
		return runtime.Container{}, false
	}
	if err := m.rt.Start(ctx, c.ID); err != nil {
		m.fail(spec.ID, err.Error())
		log.Error("start bot container", "error", err.Error())
		return runtime.Container{}, false
	}
	log.Info("bot container started", "container_id", c.ID)
	if nc, err := m.rt.Inspect(ctx, c.ID); err == nil {
		c = nc
	}
	m.update(spec.ID, func(s *botState) { s.LastError, s.logsTail = "", "" })
	return c, true
}

func (m *Bots) fail(id, msg string) {
	m.update(id, func(s *botState) { s.Status, s.Health, s.LastError = wire.BotFailed, "", msg })
}

// failLogged fails a bot and logs why, once for as long as the reason stays the same.
func (m *Bots) failLogged(id, msg string, log *slog.Logger) {
	var again bool
	m.update(id, func(s *botState) {
		s.Status, s.Health, s.LastError = wire.BotFailed, "", msg
		again, s.failure = s.failure == msg, msg
	})
	if !again {
		log.Error("bot cannot run", "error", msg)
	}
}

// holdStopped keeps a bot that must not run stopped — its container, if any, is stopped —
// and failed with why.
func (m *Bots) holdStopped(ctx context.Context, spec wire.BotSpec, c *runtime.Container, why string, log *slog.Logger) {
	id := ""
	if c != nil {
		id = c.ID
		if c.State == "running" || c.State == "restarting" {
			log.Warn("stopping bot", "reason", why)
			if err := m.rt.Stop(ctx, c.ID, durationOr(spec.StopTimeout, defaultStopWait)); err != nil {
				m.fail(spec.ID, err.Error())
				return
			}
		}
	}
	m.update(spec.ID, func(s *botState) {
		s.Status, s.Health, s.ContainerID, s.HostPort, s.StartedAt, s.LastError = wire.BotFailed, "", id, 0, nil, why
	})
}

// observe reads a running container's probes: starting until /startupz passes (failed after
// startWait), then running with the health /healthz and /readyz give.
func (m *Bots) observe(ctx context.Context, id string, c runtime.Container, startWait time.Duration) {
	m.update(id, func(s *botState) {
		s.ContainerID, s.HostPort, s.Restarts = c.ID, c.HostPort, c.RestartCount
		s.gateway, s.ip = c.Gateway, c.IP
		if !c.StartedAt.IsZero() {
			t := c.StartedAt
			s.StartedAt = &t
		}
	})
	if c.State != "running" {
		status := wire.BotStarting
		if c.State == "exited" || c.State == "dead" || c.State == "created" {
			status = wire.BotStopped
		}
		m.update(id, func(s *botState) { s.Status, s.Health, s.LastError = status, "", "" })
		return
	}
	p := m.probeAll(ctx, c.HostPort)
	if p.Startupz.Status != http.StatusOK {
		if !c.StartedAt.IsZero() && m.now().Sub(c.StartedAt) > startWait {
			// Read the logs once per failure, and not under the lock.
			m.mu.Lock()
			tail := m.states[id].logsTail
			need := m.states[id].Status != wire.BotFailed || tail == ""
			m.mu.Unlock()
			if need {
				tail = m.lastLines(ctx, c.ID, 20)
			}
			m.update(id, func(s *botState) {
				s.logsTail = tail
				s.Status, s.Health = wire.BotFailed, ""
				s.LastError = fmt.Sprintf("gateway did not pass /startupz within %s; last log lines:\n%s", startWait, s.logsTail)
			})
			return
		}
		m.update(id, func(s *botState) { s.Status, s.Health, s.LastError = wire.BotStarting, "", "" })
		return
	}
	health := wire.HealthHealthy
	switch {
	case p.Healthz.Status != http.StatusOK:
		health = wire.HealthUnhealthy
	case p.Readyz.Status != http.StatusOK:
		health = wire.HealthDegraded
	}
	m.update(id, func(s *botState) { s.Status, s.Health, s.LastError, s.logsTail = wire.BotRunning, health, "", "" })
}

// memory reads running bots' memory use, one at a time and apart from convergence: the
// Engine takes about a second for each, which must not delay starting or probing a bot.
func (m *Bots) memory(ctx context.Context) {
	for {
		m.mu.Lock()
		type job struct{ id, container string }
		var jobs []job
		for id, s := range m.states {
			if s.Status == wire.BotRunning && s.ContainerID != "" {
				jobs = append(jobs, job{id, s.ContainerID})
			}
		}
		m.mu.Unlock()
		for _, j := range jobs {
			mem, err := m.rt.Memory(ctx, j.container)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				m.mu.Lock()
				if s, ok := m.states[j.id]; ok && s.ContainerID == j.container {
					s.MemoryUsage = mem
				}
				m.mu.Unlock()
			}
		}
		wait := memEvery
		if len(jobs) == 0 {
			wait = m.interval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// lastLines reads the container's last n log lines.
func (m *Bots) lastLines(ctx context.Context, id string, n int) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rc, err := m.rt.Logs(ctx, id, false, n)
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 16<<10))
	return strings.TrimRight(string(b), "\n")
}

// probeAll asks the gateway's three probes. The gateway listens on 127.0.0.1 only.
func (m *Bots) probeAll(ctx context.Context, port int) wire.Probes {
	p := wire.Probes{Checked: m.now().UTC()}
	if port == 0 {
		e := wire.Probe{Error: "no published port"}
		p.Startupz, p.Healthz, p.Readyz = e, e, e
		return p
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	p.Startupz = m.probeOne(ctx, base+"/startupz")
	p.Healthz = m.probeOne(ctx, base+"/healthz")
	p.Readyz = m.probeOne(ctx, base+"/readyz")
	return p
}

func (m *Bots) probeOne(ctx context.Context, url string) wire.Probe {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return wire.Probe{Error: err.Error()}
	}
	resp, err := m.probe.Do(req)
	if err != nil {
		return wire.Probe{Error: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return wire.Probe{Status: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
}

// remove removes a container pmd no longer wants, and reports whether it is gone.
func (m *Bots) remove(ctx context.Context, id string) bool {
	if err := m.rt.Remove(ctx, id); err != nil {
		m.log.Error("remove bot container", "bot_id", id, "error", err.Error())
		return false
	}
	m.log.Info("bot container removed", "bot_id", id)
	return true
}

func validID(id string) bool { return wire.ValidBotID(id) }

func durationOr(d wire.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}
