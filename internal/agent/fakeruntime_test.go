package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// fakeRuntime is an in-memory Runtime for the bot manager's tests. It records every call,
// fails the operations it is told to (by method name), and gives each container a fake
// gateway: a real HTTP server on loopback whose probe answers the test controls, reported
// as the container's HostPort while it runs. It is safe for concurrent use.
type fakeRuntime struct {
	t      *testing.T
	now    func() time.Time
	events chan runtime.Event

	mu       sync.Mutex
	seq      int
	byBot    map[string]*fakeContainer
	servers  []*httptest.Server
	calls    []string
	created  []runtime.ContainerSpec
	stops    []time.Duration
	logCalls []logCall
	fail     map[string]error
	logText  string
	logsFunc func(follow bool, tail int) (io.ReadCloser, error)
	// probes are the answers a new container's gateway starts with.
	probes probeCodes
	// userOf is the user a container that add puts in the engine runs as: the bot's own, as
	// the agent would have made it.
	userOf func(botID string) string
}

var _ Runtime = (*fakeRuntime)(nil)

type fakeContainer struct {
	c     runtime.Container
	agent string
	gw    *fakeGateway
}

type logCall struct {
	ContainerID string
	Follow      bool
	Tail        int
}

// probeCodes are the HTTP statuses a fake gateway's probes answer with.
type probeCodes struct{ Startupz, Healthz, Readyz int }

var allOK = probeCodes{http.StatusOK, http.StatusOK, http.StatusOK}

func newFakeRuntime(t *testing.T, now func() time.Time) *fakeRuntime {
	f := &fakeRuntime{
		t: t, now: now, events: make(chan runtime.Event, 16),
		byBot: map[string]*fakeContainer{}, fail: map[string]error{}, probes: allOK,
	}
	t.Cleanup(func() {
		f.mu.Lock()
		servers := slices.Clone(f.servers)
		f.mu.Unlock()
		for _, s := range servers {
			s.Close()
		}
	})
	return f
}

// failOn makes op (a method name: "List", "Create"…) fail with err; a nil err heals it.
func (f *fakeRuntime) failOn(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, op)
		return
	}
	f.fail[op] = err
}

// record notes a call and returns the error op is set to fail with. The caller holds f.mu.
func (f *fakeRuntime) record(op, subject string) error {
	f.calls = append(f.calls, op+" "+subject)
	return f.fail[op]
}

// actions returns the calls made so far that are not reads (List, Inspect, Logs).
func (f *fakeRuntime) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		op, _, _ := strings.Cut(c, " ")
		if op != "List" && op != "Inspect" && op != "Logs" {
			out = append(out, c)
		}
	}
	return out
}

// count returns how many calls of op were made.
func (f *fakeRuntime) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, op+" ") {
			n++
		}
	}
	return n
}

// reset forgets the calls made so far.
func (f *fakeRuntime) reset() {
	f.mu.Lock()
	f.calls = nil
	f.mu.Unlock()
}

func (f *fakeRuntime) specs() []runtime.ContainerSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.created)
}

// add puts a container in the engine as if an earlier agent run had made it.
func (f *fakeRuntime) add(agent, botID string, version int64, state string) runtime.Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	var user string
	if f.userOf != nil {
		user = f.userOf(botID)
	}
	fc := f.newContainer(agent, runtime.ContainerSpec{BotID: botID, SpecVersion: version, Image: "img:old", User: user})
	if state == "running" {
		fc.c.StartedAt = f.now()
	}
	fc.c.State = state
	return fc.c
}

// newContainer makes a created container and its gateway. The caller holds f.mu.
func (f *fakeRuntime) newContainer(agent string, spec runtime.ContainerSpec) *fakeContainer {
	f.seq++
	gw := newFakeGateway(f.probes)
	f.servers = append(f.servers, gw.srv)
	fc := &fakeContainer{
		c: runtime.Container{
			ID: fmt.Sprintf("ctr-%s-%d", spec.BotID, f.seq), BotID: spec.BotID, SpecVersion: spec.SpecVersion,
			Layout: runtime.Layout, User: spec.User, Image: spec.Image, State: "created",
		},
		agent: agent, gw: gw,
	}
	f.byBot[spec.BotID] = fc
	return fc
}

// gateway returns a bot's container's fake gateway.
func (f *fakeRuntime) gateway(botID string) *fakeGateway {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc, ok := f.byBot[botID]
	if !ok {
		f.t.Fatalf("no container for bot %s", botID)
	}
	return fc.gw
}

// container returns a bot's container as the engine would report it.
func (f *fakeRuntime) container(botID string) (runtime.Container, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc, ok := f.byBot[botID]
	if !ok {
		return runtime.Container{}, false
	}
	return f.report(fc), true
}

// exit makes a bot's container exit as if its process died.
func (f *fakeRuntime) exit(botID string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.byBot[botID]
	fc.c.State, fc.c.ExitCode = "exited", code
}

// vanish removes a bot's container behind the agent's back.
func (f *fakeRuntime) vanish(botID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.byBot[botID]
	fc.gw.srv.Close()
	delete(f.byBot, botID)
}

// relabel changes the spec version a bot's container is labelled with.
func (f *fakeRuntime) relabel(botID string, version int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byBot[botID].c.SpecVersion = version
}

// relayout changes the layout a bot's container is labelled with ("" for layout 1).
func (f *fakeRuntime) relayout(botID, layout string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byBot[botID].c.Layout = layout
}

func (f *fakeRuntime) setLogs(text string) {
	f.mu.Lock()
	f.logText = text
	f.mu.Unlock()
}

// report is the container as List and Inspect give it. The caller holds f.mu.
func (f *fakeRuntime) report(fc *fakeContainer) runtime.Container {
	c := fc.c
	if c.State == "running" || c.State == "restarting" {
		c.HostPort = fc.gw.port()
	}
	return c
}

// byID finds a container by its id. The caller holds f.mu.
func (f *fakeRuntime) byID(id string) (*fakeContainer, bool) {
	for _, fc := range f.byBot {
		if fc.c.ID == id {
			return fc, true
		}
	}
	return nil, false
}

// subject names a container id's bot in the call log. The caller holds f.mu.
func (f *fakeRuntime) subject(id string) string {
	if fc, ok := f.byID(id); ok {
		return fc.c.BotID
	}
	return "?" + id
}

func (f *fakeRuntime) Version(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Version", ""); err != nil {
		return "", err
	}
	return "fake 1.0", nil
}

func (f *fakeRuntime) List(ctx context.Context, agentID string) ([]runtime.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("List", agentID); err != nil {
		return nil, err
	}
	var out []runtime.Container
	for _, fc := range f.byBot {
		if fc.agent == agentID {
			out = append(out, f.report(fc))
		}
	}
	slices.SortFunc(out, func(a, b runtime.Container) int { return strings.Compare(a.BotID, b.BotID) })
	return out, nil
}

func (f *fakeRuntime) EnsureImage(ctx context.Context, ref string, progress func(string)) error {
	f.mu.Lock()
	err := f.record("EnsureImage", ref)
	f.mu.Unlock()
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	progress("Pulling from " + ref)
	return nil
}

func (f *fakeRuntime) Create(ctx context.Context, spec runtime.ContainerSpec) (runtime.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Create", spec.BotID); err != nil {
		return runtime.Container{}, err
	}
	if _, ok := f.byBot[spec.BotID]; ok {
		return runtime.Container{}, fmt.Errorf("create container for bot %s: name already in use", spec.BotID)
	}
	f.created = append(f.created, spec)
	return f.report(f.newContainer(spec.Agent, spec)), nil
}

func (f *fakeRuntime) Start(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Start", f.subject(id)); err != nil {
		return err
	}
	fc, ok := f.byID(id)
	if !ok {
		return fmt.Errorf("start %s: %w", id, runtime.ErrNotFound)
	}
	if fc.c.State != "running" {
		fc.c.State, fc.c.StartedAt, fc.c.ExitCode = "running", f.now(), 0
	}
	return nil
}

func (f *fakeRuntime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Stop", f.subject(id)); err != nil {
		return err
	}
	f.stops = append(f.stops, timeout)
	if fc, ok := f.byID(id); ok {
		fc.c.State = "exited"
	}
	return nil
}

func (f *fakeRuntime) Restart(ctx context.Context, id string, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Restart", f.subject(id)); err != nil {
		return err
	}
	fc, ok := f.byID(id)
	if !ok {
		return fmt.Errorf("restart %s: %w", id, runtime.ErrNotFound)
	}
	fc.c.State, fc.c.StartedAt = "running", f.now()
	return nil
}

func (f *fakeRuntime) Remove(ctx context.Context, botID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Remove", botID); err != nil {
		return err
	}
	if fc, ok := f.byBot[botID]; ok {
		fc.gw.srv.Close()
		delete(f.byBot, botID)
	}
	return nil
}

func (f *fakeRuntime) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Inspect", f.subject(id)); err != nil {
		return runtime.Container{}, err
	}
	fc, ok := f.byID(id)
	if !ok {
		return runtime.Container{}, fmt.Errorf("inspect %s: %w", id, runtime.ErrNotFound)
	}
	return f.report(fc), nil
}

func (f *fakeRuntime) Memory(ctx context.Context, id string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.byID(id); !ok {
		return 0, fmt.Errorf("stats of %s: %w", id, runtime.ErrNotFound)
	}
	return 300 << 20, nil
}

func (f *fakeRuntime) Logs(ctx context.Context, id string, follow bool, tail int) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Logs", f.subject(id)); err != nil {
		return nil, err
	}
	f.logCalls = append(f.logCalls, logCall{ContainerID: id, Follow: follow, Tail: tail})
	if f.logsFunc != nil {
		return f.logsFunc(follow, tail)
	}
	return io.NopCloser(strings.NewReader(f.logText)), nil
}

// Events delivers what the test sends on f.events until ctx ends.
func (f *fakeRuntime) Events(ctx context.Context, agentID string) (<-chan runtime.Event, <-chan error) {
	f.mu.Lock()
	f.calls = append(f.calls, "Events "+agentID)
	f.mu.Unlock()
	evs, errs := make(chan runtime.Event), make(chan error, 1)
	go func() {
		defer close(evs)
		for {
			select {
			case <-ctx.Done():
				errs <- ctx.Err()
				close(errs)
				return
			case e := <-f.events:
				select {
				case evs <- e:
				case <-ctx.Done():
				}
			}
		}
	}()
	return evs, errs
}

// fakeGateway stands in for an OpenClaw gateway: /startupz, /healthz and /readyz answer
// with the statuses the test sets; every other request is recorded and answered with 200.
type fakeGateway struct {
	srv *httptest.Server

	mu    sync.Mutex
	codes map[string]int
	reqs  []gatewayRequest
}

// gatewayRequest is a request the fake gateway received, other than a probe.
type gatewayRequest struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	Body                         string
}

func newFakeGateway(p probeCodes) *fakeGateway {
	g := &fakeGateway{codes: map[string]int{"/startupz": p.Startupz, "/healthz": p.Healthz, "/readyz": p.Readyz}}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	return g
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	code, probe := g.codes[r.URL.Path]
	g.mu.Unlock()
	if probe {
		w.WriteHeader(code)
		fmt.Fprintf(w, "%s %d\n", r.URL.Path, code)
		return
	}
	if r.URL.Path == "/ws" && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		// An echo over an upgraded connection, as the Control UI's WebSocket would be.
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		io.Copy(conn, rw)
		return
	}
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.reqs = append(g.reqs, gatewayRequest{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host,
		Header: r.Header.Clone(), Body: string(body),
	})
	g.mu.Unlock()
	w.Header().Set("X-Fake-Gateway", "yes")
	fmt.Fprintf(w, "gateway saw %s %s", r.Method, r.URL.Path)
}

// set makes a probe (e.g. "/readyz") answer with code.
func (g *fakeGateway) set(path string, code int) {
	g.mu.Lock()
	g.codes[path] = code
	g.mu.Unlock()
}

func (g *fakeGateway) requests() []gatewayRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.reqs)
}

func (g *fakeGateway) port() int {
	_, p, err := net.SplitHostPort(g.srv.Listener.Addr().String())
	if err != nil {
		panic(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
