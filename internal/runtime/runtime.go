// Package runtime holds the types that cross the boundary between the agent and the container
// engine it drives. The agent owns the interface it needs (agent.Runtime); an engine package
// such as runtime/docker implements it with these types.
package runtime

import (
	"errors"
	"net/netip"
	"time"
)

// Labels put on every container and network the agent creates; containers are found by them.
const (
	LabelBot  = "pocketmolt.bot"  // bot id
	LabelSpec = "pocketmolt.spec" // spec version
	// LabelAgent names the agent (host id) that owns the container, so two agents sharing
	// one Engine (tests, a laptop) never touch each other's bots.
	LabelAgent = "pocketmolt.agent"
	// LabelLayout is the Layout a container was made with. A container without the current
	// one (made by an older agent) is removed and made anew, like one of another spec
	// version, after its bot's host directories have been migrated.
	LabelLayout = "pocketmolt.layout"
)

// Layout versions how a bot's container and host directories are laid out. Layout 1 (no
// label) mounted one writable directory holding both openclaw.json and the gateway's state;
// layout 2 keeps the config apart, read-only, and the root filesystem read-only too; layout
// 3 adds the hosts entry naming ModelHost the gateway of the bot's network (directories as
// in layout 2).
const Layout = "3"

// GatewayPort is the port the OpenClaw gateway listens on inside its container.
const GatewayPort = 18789

// ModelHost is the name a bot's container resolves to its own network's gateway address,
// where its agent serves the bot's model endpoint on ModelPort. Nothing else listens there
// for the bot, and no other bot can use it.
const (
	ModelHost = "pocketmolt-models"
	ModelPort = 18790
)

// ErrNotFound is returned for a container or image that does not exist.
var ErrNotFound = errors.New("not found")

// ErrImageUnavailable is returned when an image is neither present nor pullable.
var ErrImageUnavailable = errors.New("image unavailable")

// ContainerSpec is everything needed to create one bot's container.
type ContainerSpec struct {
	BotID       string
	Agent       string // host id, for LabelAgent
	SpecVersion int64
	Image       string
	// Env holds the container's environment, secrets included; it never goes into labels
	// or logs.
	Env map[string]string
	// ConfigDir is the host directory holding openclaw.json, which the agent owns and the
	// gateway may only read: it is mounted read-only at a path of its own. StateDir and
	// WorkspaceDir, the bot's own, are mounted read-write at the gateway's state dir and at
	// its workspace beneath it.
	ConfigDir    string
	StateDir     string
	WorkspaceDir string
	// TmpBytes sizes the tmpfs mounted at /tmp (the root filesystem is read-only); it counts
	// against MemoryBytes. 0 means the engine package's default.
	TmpBytes int64
	// LogMaxBytes and LogMaxFiles bound the container's log on the host: at most LogMaxFiles
	// files of LogMaxBytes each. 0 means the engine package's defaults.
	LogMaxBytes int64
	LogMaxFiles int
	MemoryBytes int64
	NanoCPUs    int64
	PIDs        int64
	// User is "uid:gid" the gateway runs as: never root, and on a host the agent can chown
	// on, a uid of the bot's own.
	User string
	// StopTimeout is how long a stop waits for the gateway before killing it.
	StopTimeout time.Duration
}

// Container is a bot container as the engine reports it.
type Container struct {
	ID          string
	BotID       string
	SpecVersion int64
	// Layout is the container's LabelLayout, "" for one made before layouts were labelled.
	Layout string
	// User is the "uid:gid" the container runs as.
	User  string
	Image string
	// State is the engine's word: created, running, paused, restarting, removing, exited, dead.
	State        string
	ExitCode     int
	OOMKilled    bool
	RestartCount int
	// HostPort is the 127.0.0.1 port the gateway port is published on; 0 when not running.
	HostPort int
	// Gateway is the host's address on the bot's own network (where ModelHost points), and
	// IP the container's address there; invalid when the engine does not report them.
	Gateway, IP netip.Addr
	StartedAt   time.Time
}

// Event is a container event the agent reports to pmd as it happens.
type Event struct {
	BotID       string
	ContainerID string
	// Action is the engine's action: die, oom, start, stop, health_status…
	Action   string
	ExitCode int
	Time     time.Time
}
