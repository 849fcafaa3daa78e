package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// hostFiles are files of the host's own, outside the agent's state dir, that links planted in
// a bot's directories point at: nothing the agent does may change them.
type hostFiles struct {
	dir, file, absent string
	mode              os.FileMode
}

const hostText = "root's own\n"

func newHostFiles(t *testing.T) hostFiles {
	t.Helper()
	h := hostFiles{dir: t.TempDir()}
	h.file, h.absent = filepath.Join(h.dir, "passwd"), filepath.Join(h.dir, "absent")
	if err := os.WriteFile(h.file, []byte(hostText), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	h.mode = fi.Mode()
	return h
}

func (h hostFiles) unchanged(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile(h.file); err != nil || string(b) != hostText {
		t.Errorf("host file changed: %q, %v", b, err)
	}
	if _, err := os.Lstat(h.absent); !os.IsNotExist(err) {
		t.Errorf("%s was created: %v", h.absent, err)
	}
	if entries, _ := os.ReadDir(h.dir); len(entries) != 1 {
		t.Errorf("host dir holds %d entries, want 1", len(entries))
	}
	for _, p := range []string{h.dir, h.file} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
			t.Errorf("%s given to %d:%d", p, st.Uid, st.Gid)
		}
	}
	if fi, _ := os.Stat(h.dir); fi.Mode() != h.mode {
		t.Errorf("host dir mode changed to %v", fi.Mode())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestBotsLinksWhereTheAgentWrites plants links, as a container or an earlier layout could,
// at every name the agent creates, writes or gives away in a bot's directories: none is
// followed. Where a directory is a link the bot fails and no container is made; a link in
// place of the config file is replaced by the file.
func TestBotsLinksWhereTheAgentWrites(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, bot string, h hostFiles)
		runs  bool // the bot still runs
		err   string
	}{
		{"the bot's directory", func(t *testing.T, bot string, h hostFiles) {
			must(t, os.Symlink(h.dir, bot))
		}, false, "not a directory"},
		{"config directory", func(t *testing.T, bot string, h hostFiles) {
			must(t, os.Mkdir(bot, 0o700))
			must(t, os.Mkdir(filepath.Join(bot, "state"), 0o700))
			must(t, os.Symlink(h.dir, filepath.Join(bot, "config")))
		}, false, "not a directory"},
		{"state directory", func(t *testing.T, bot string, h hostFiles) {
			must(t, os.Mkdir(bot, 0o700))
			must(t, os.Symlink(h.dir, filepath.Join(bot, "state")))
		}, false, "not a directory"},
		{"workspace directory", func(t *testing.T, bot string, h hostFiles) {
			must(t, os.Mkdir(bot, 0o700))
			must(t, os.Symlink(h.dir, filepath.Join(bot, "workspace")))
		}, false, "not a directory"},
		{"uid record", func(t *testing.T, bot string, h hostFiles) {
			must(t, os.Mkdir(bot, 0o700))
			must(t, os.Symlink(h.file, filepath.Join(bot, "uid")))
		}, false, "not a regular file"},
		{"config file, to a host file", func(t *testing.T, bot string, h hostFiles) {
			must(t, os.MkdirAll(filepath.Join(bot, "config"), 0o750))
			must(t, os.Mkdir(filepath.Join(bot, "state"), 0o700))
			must(t, os.Symlink(h.file, filepath.Join(bot, "config", "openclaw.json")))
		}, true, ""},
		{"config file, to a name that does not exist", func(t *testing.T, bot string, h hostFiles) {
			must(t, os.MkdirAll(filepath.Join(bot, "config"), 0o750))
			must(t, os.Mkdir(filepath.Join(bot, "state"), 0o700))
			must(t, os.Symlink(h.absent, filepath.Join(bot, "config", "openclaw.json")))
		}, true, ""},
		{"layout 1's state, full of links", func(t *testing.T, bot string, h hostFiles) {
			old := filepath.Join(bot, "config")
			must(t, os.MkdirAll(filepath.Join(old, "sub"), 0o755))
			must(t, os.Symlink(h.file, filepath.Join(old, "openclaw.json.tmp")))
			must(t, os.Symlink(h.file, filepath.Join(old, "sub", "passwd")))
			must(t, os.Symlink(h.dir, filepath.Join(old, "hostdir")))
			must(t, os.Symlink("../../../..", filepath.Join(old, "up")))
			must(t, os.Mkdir(filepath.Join(bot, "workspace"), 0o700))
			must(t, os.Symlink(h.dir, filepath.Join(bot, "workspace", "hostdir")))
		}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBotsFixture(t)
			h := newHostFiles(t)
			bot := filepath.Join(f.dir, "bots", "alpha")
			must(t, os.MkdirAll(filepath.Dir(bot), 0o700))
			tt.plant(t, bot, h)
			f.want(testSpec("alpha", 1, true))
			f.m.step(t.Context())
			f.m.step(t.Context())
			h.unchanged(t)
			st := f.state(t, "alpha")
			if !tt.runs {
				assertStatus(t, st, wire.BotFailed, "")
				if !strings.Contains(st.LastError, tt.err) {
					t.Errorf("last error %q, want it to say %q", st.LastError, tt.err)
				}
				if n := f.rt.count("Create"); n != 0 {
					t.Errorf("%d containers created", n)
				}
				return
			}
			assertStatus(t, st, wire.BotRunning, wire.HealthHealthy)
			cfg := filepath.Join(bot, "config", "openclaw.json")
			fi, err := os.Lstat(cfg)
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("config: %v, %v; want a regular file", fi.Mode(), err)
			}
			if b, _ := os.ReadFile(cfg); !bytes.Equal(b, testSpec("alpha", 1, true).Config) {
				t.Errorf("config holds %s", b)
			}
		})
	}
}

// TestBotsMigrateLayout1 upgrades a bot made by an agent before layouts: its container is
// removed and made anew, the old writable config directory becomes the state directory with
// every file kept and given to the bot's uid, and a new read-only config directory is made.
func TestBotsMigrateLayout1(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give files to the bot's uid")
	}
	f := newBotsFixture(t)
	h := newHostFiles(t)
	bot := filepath.Join(f.dir, "bots", "alpha")
	// As main made it: config/ (openclaw.json, the gateway's files, the workspace's mount
	// point) and workspace/, 0700, owned by 1000.
	must(t, os.MkdirAll(filepath.Join(bot, "config", "workspace"), 0o700))
	must(t, os.MkdirAll(filepath.Join(bot, "config", "agents", "main"), 0o755))
	must(t, os.MkdirAll(filepath.Join(bot, "workspace"), 0o700))
	must(t, os.WriteFile(filepath.Join(bot, "config", "openclaw.json"), []byte(`{"old":true}`), 0o600))
	must(t, os.WriteFile(filepath.Join(bot, "config", "agents", "main", "sessions.db"), []byte("conversation"), 0o600))
	must(t, os.WriteFile(filepath.Join(bot, "workspace", "MEMORY.md"), []byte("remember"), 0o600))
	must(t, os.Symlink(h.file, filepath.Join(bot, "config", "openclaw.json.tmp")))
	must(t, os.Symlink(h.dir, filepath.Join(bot, "workspace", "hostdir")))
	must(t, filepath.Walk(bot, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 1000, 1000)
	}))
	f.rt.add(testAgent, "alpha", 1, "running")
	f.rt.relayout("alpha", "")
	old, _ := f.rt.container("alpha")

	f.want(testSpec("alpha", 1, true))
	f.m.step(t.Context())
	h.unchanged(t)
	st := f.state(t, "alpha")
	assertStatus(t, st, wire.BotRunning, wire.HealthHealthy)
	if st.ContainerID == old.ID {
		t.Fatal("the layout-1 container was kept")
	}
	if got := f.rt.actions(); !slices.Equal(got[:1], []string{"Remove alpha"}) || !slices.Contains(got, "Create alpha") {
		t.Fatalf("runtime calls %q, want the old container removed (with its network) first, then one created", got)
	}
	o := f.owner(t, "alpha")
	for path, want := range map[string]string{
		"state/openclaw.json":           `{"old":true}`,
		"state/agents/main/sessions.db": "conversation",
		"workspace/MEMORY.md":           "remember",
		"config/openclaw.json":          string(testSpec("alpha", 1, true).Config),
		"state/workspace":               "",
		"state/openclaw.json.tmp":       "",
		"workspace/hostdir":             "",
		"state/agents/main":             "",
		"state/agents":                  "",
		"config":                        "",
		"state":                         "",
		"workspace":                     "",
		"uid":                           fmt.Sprintln(o.uid),
	} {
		p := filepath.Join(bot, path)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if want != "" {
			if b, _ := os.ReadFile(p); string(b) != want {
				t.Errorf("%s holds %q, want %q", path, b, want)
			}
		}
		st := fi.Sys().(*syscall.Stat_t)
		wantUID, wantGID := o.uid, o.gid
		switch {
		case path == "config" || strings.HasPrefix(path, "config/"):
			wantUID = 0
		case path == "uid":
			wantUID, wantGID = 0, 0
		}
		if int(st.Uid) != wantUID || int(st.Gid) != wantGID {
			t.Errorf("%s owned by %d:%d, want %d:%d", path, st.Uid, st.Gid, wantUID, wantGID)
		}
	}
	if fi, _ := os.Lstat(filepath.Join(bot, "state")); fi.Mode().Perm() != 0o700 {
		t.Errorf("state mode %v", fi.Mode())
	}
	if fi, _ := os.Lstat(filepath.Join(bot, "state", "openclaw.json.tmp")); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("a link of the old tree was replaced or followed")
	}
	// Done once: the next pass changes nothing.
	f.rt.reset()
	f.m.step(t.Context())
	assertCalls(t, f.rt)
}

func TestBotsUIDs(t *testing.T) {
	f := newBotsFixture(t)
	f.m.uids.taken = func(id int) bool { return id == DefaultBotUIDBase+1 } // a host account
	f.want(testSpec("alpha", 1, true), testSpec("beta", 1, true), testSpec("gamma", 1, true))
	f.m.step(t.Context())
	users := map[string]string{}
	for _, s := range f.rt.specs() {
		users[s.BotID] = s.User
	}
	seen := map[string]bool{}
	for id, u := range users {
		if seen[u] {
			t.Errorf("bots share user %s: %v", u, users)
		}
		seen[u] = true
		if u == fmt.Sprintf("%d:%d", DefaultBotUIDBase+1, DefaultBotUIDBase+1) {
			t.Errorf("bot %s got the host account's uid", id)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("users %v", users)
	}

	// A new agent on the same state dir (a restart) gives each bot the same uid, and
	// recreates nothing.
	g := newBotsFixture(t)
	g.dir = f.dir
	g.m = NewBots(g.rt, f.dir, testAgent, g.m.log)
	g.m.now = g.clock.Now
	g.rt.userOf = func(id string) string { return g.owner(t, id).user() }
	for _, s := range f.rt.specs() {
		if got := g.owner(t, s.BotID).user(); got != s.User {
			t.Errorf("after a restart bot %s runs as %s, was %s", s.BotID, got, s.User)
		}
	}

	// A purged bot's uid goes to the next bot.
	f.m.SetDesired(wire.DesiredBots{Bots: []wire.BotSpec{testSpec("alpha", 1, true), testSpec("gamma", 1, true)}, Purge: []string{"beta"}})
	f.m.step(t.Context())
	f.want(testSpec("alpha", 1, true), testSpec("gamma", 1, true), testSpec("delta", 1, true))
	f.m.step(t.Context())
	if got := f.owner(t, "delta").user(); got != users["beta"] {
		t.Errorf("delta runs as %s, want beta's freed %s", got, users["beta"])
	}
}

func TestBotsUIDClashesWithAHostAccount(t *testing.T) {
	f := newBotsFixture(t)
	f.want(testSpec("alpha", 1, true))
	f.m.step(t.Context())
	taken := f.owner(t, "alpha").uid
	// Later a host account takes the uid: a new agent refuses to run the bot with it.
	g := NewBots(f.rt, f.dir, testAgent, f.m.log)
	g.uids.taken = func(id int) bool { return id == taken }
	g.SetDesired(wire.DesiredBots{Bots: []wire.BotSpec{testSpec("alpha", 1, true)}})
	g.step(t.Context())
	states, _ := g.Snapshot()
	if len(states) != 1 || states[0].Status != wire.BotFailed || !strings.Contains(states[0].LastError, "also an account") {
		t.Fatalf("states %+v", states)
	}
}

func TestHostHasID(t *testing.T) {
	if !hostHasID(0) {
		t.Error("root is not a host account")
	}
	if hostHasID(DefaultBotUIDBase) {
		t.Errorf("uid %d is a host account here: the default base collides", DefaultBotUIDBase)
	}
}

func TestValidBotUIDBase(t *testing.T) {
	for _, tc := range []struct {
		base int
		ok   bool
	}{
		{DefaultBotUIDBase, true}, {65536, true}, {1000, false}, {0, false}, {-5, false},
		{maxBotUID - BotUIDRange + 1, true}, {maxBotUID - BotUIDRange + 2, false}, {1 << 31, false},
	} {
		if err := ValidBotUIDBase(tc.base); (err == nil) != tc.ok {
			t.Errorf("ValidBotUIDBase(%d) = %v", tc.base, err)
		}
	}
}

func TestBotsSharedUIDRefusedForRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("runs as root")
	}
	f := newBotsFixture(t)
	if err := f.m.SetSharedUID(true); err == nil {
		t.Fatal("a root agent may share its uid with bots")
	}
}

// The helper below runs in a child process as nobody, without capabilities: an agent that
// cannot chown. Its result comes back as JSON on stdout.

const helperEnv = "PM_AGENT_UNPRIVILEGED_HELPER"

type helperResult struct {
	State   wire.BotState
	Creates []runtime.ContainerSpec
}

func TestUnprivilegedHelper(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("run by TestBotsCannotChownFailsClosed")
	}
	f := newBotsFixture(t)
	f.m = NewBots(f.rt, dir, testAgent, f.m.log)
	if os.Getenv(helperEnv+"_SHARED") == "1" {
		if err := f.m.SetSharedUID(true); err != nil {
			t.Fatal(err)
		}
	}
	f.want(testSpec("alpha", 1, true))
	f.m.step(t.Context())
	out, _ := json.Marshal(helperResult{State: f.state(t, "alpha"), Creates: f.rt.specs()})
	fmt.Printf("\nRESULT %s\n", out)
}

// TestBotsCannotChownFailsClosed runs the agent as an unprivileged user: it cannot give a
// bot's directories to the bot's uid, so it makes no container and says what to fix, in the
// bot's state and in its log. With bot-shared-uid, the bot runs as the agent's user.
func TestBotsCannotChownFailsClosed(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start a process as another user")
	}
	const nobody = 65534
	// The test binary and a state dir the unprivileged user can reach.
	base, err := os.MkdirTemp("", "pm-unpriv-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	bin := filepath.Join(base, "agent.test")
	data, err := os.ReadFile(os.Args[0])
	must(t, err)
	must(t, os.WriteFile(bin, data, 0o755))

	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%t", shared), func(t *testing.T) {
			state := filepath.Join(base, fmt.Sprintf("state-%t", shared))
			must(t, os.Mkdir(state, 0o700))
			must(t, os.Chown(state, nobody, nobody))
			cmd := exec.Command(bin, "-test.run=^TestUnprivilegedHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+state, fmt.Sprintf("%s_SHARED=%d", helperEnv, map[bool]int{false: 0, true: 1}[shared]))
			cmd.Dir = base
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("helper: %v\n%s\n%s", err, stdout.String(), stderr.String())
			}
			_, after, ok := strings.Cut(stdout.String(), "\nRESULT ")
			var res helperResult
			if !ok || json.Unmarshal([]byte(strings.SplitN(after, "\n", 2)[0]), &res) != nil {
				t.Fatalf("helper said:\n%s", stdout.String())
			}
			if shared {
				if res.State.Status != wire.BotRunning || len(res.Creates) != 1 || res.Creates[0].User != fmt.Sprintf("%d:%d", nobody, nobody) {
					t.Fatalf("shared uid: state %+v, created %+v", res.State, res.Creates)
				}
				return
			}
			if len(res.Creates) != 0 {
				t.Fatalf("an agent that cannot chown created %+v", res.Creates)
			}
			if res.State.Status != wire.BotFailed {
				t.Errorf("status %q, want failed", res.State.Status)
			}
			for _, want := range []string{"run pmagent as root", "CAP_CHOWN", "pmagent.service", "operation not permitted"} {
				if !strings.Contains(res.State.LastError, want) {
					t.Errorf("last error %q does not say %q", res.State.LastError, want)
				}
				if !strings.Contains(stdout.String()+stderr.String(), want) {
					t.Errorf("the agent's log does not say %q", want)
				}
			}
			// Nothing was given to the bot: its state directory stays the agent's.
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(state, "bots", "alpha", "state"), &st); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			} else if err == nil && st.Uid != nobody {
				t.Errorf("state dir owned by %d", st.Uid)
			}
		})
	}
}
