// Package wire holds the types that cross a process boundary: the tunnel between pmd and
// pmagent, and pmd's admin API used by pmctl. Both sides import it, so a field renamed here is
// renamed everywhere at once.
package wire

import (
	"time"
)

// ALPN protocol names negotiated on pmd's agent listener. An agent with a certificate speaks
// ProtoTunnel (yamux); a host enrolling with a token speaks plain HTTP/1.1 (ProtoEnroll) for
// one request, since net/http closes a connection whose ALPN protocol it has no handler for.
const (
	ProtoTunnel = "pocketmolt-tunnel/1"
	ProtoEnroll = "http/1.1"
)

// Host statuses as reported by the admin API.
const (
	HostPending  = "pending"
	HostOnline   = "online"
	HostOffline  = "offline"
	HostDraining = "draining"
	HostRevoked  = "revoked"
)

// HostFacts is what an agent tells pmd about its machine in every heartbeat.
type HostFacts struct {
	Hostname      string `json:"hostname" yaml:"hostname"`
	OS            string `json:"os" yaml:"os"`
	Arch          string `json:"arch" yaml:"arch"`
	Kernel        string `json:"kernel,omitempty" yaml:"kernel,omitempty"`
	CPUs          int    `json:"cpus" yaml:"cpus"`
	MemoryBytes   uint64 `json:"memory_bytes" yaml:"memory_bytes"`
	DiskBytes     uint64 `json:"disk_bytes" yaml:"disk_bytes"`
	DiskFreeBytes uint64 `json:"disk_free_bytes" yaml:"disk_free_bytes"`
	// DockerVersion is the Engine's version, or "unavailable" when it cannot be reached.
	DockerVersion string `json:"docker_version" yaml:"docker_version"`
	// DockerError says why Docker is unavailable; empty when it answered.
	DockerError  string `json:"docker_error,omitempty" yaml:"docker_error,omitempty"`
	AgentVersion string `json:"agent_version" yaml:"agent_version"`
	// Capacity is what the host offers to bots.
	Capacity Capacity `json:"capacity" yaml:"capacity"`
	// SharedBotUID is true when the agent runs every bot as its own user (bot-shared-uid):
	// its bots are not isolated from one another.
	SharedBotUID bool `json:"shared_bot_uid,omitempty" yaml:"shared_bot_uid,omitempty"`
}

// DockerUnavailable is HostFacts.DockerVersion when the Engine cannot be reached.
const DockerUnavailable = "unavailable"

// Heartbeat is the body of the agent's POST /v1/heartbeat to pmd.
type Heartbeat struct {
	Facts HostFacts `json:"facts"`
	// Sent is the agent's clock when it sent the heartbeat.
	Sent time.Time `json:"sent"`
	// Bots is every bot the agent observes. Observed is false until the agent has read its
	// container engine at least once; until then Bots says nothing about absent bots.
	Bots     []BotState `json:"bots"`
	Observed bool       `json:"observed"`
}

// HeartbeatReply is pmd's answer to a heartbeat.
type HeartbeatReply struct {
	// Interval is how often pmd wants heartbeats; the agent adopts it.
	Interval Duration `json:"interval"`
	// RevokedServers are the serials of pmd server certificates that were revoked (by
	// `pmd rotate-server-cert`) and have not expired. The agent keeps them and refuses a
	// server that presents one. An agent of an older version ignores the field.
	RevokedServers []string `json:"revoked_servers,omitempty"`
}

// MaxRevokedServers bounds RevokedServers; pmd sends the most recent ones.
const MaxRevokedServers = 100

// MaxHeartbeatBytes bounds a heartbeat body; larger ones get 413 payload_too_large.
const MaxHeartbeatBytes = 1 << 20

// AgentInfo is the answer to pmd's GET /v1/info on the agent.
type AgentInfo struct {
	HostID       string    `json:"host_id"`
	AgentVersion string    `json:"agent_version"`
	Started      time.Time `json:"started"`
	Facts        HostFacts `json:"facts"`
}

// EnrollRequest is what pmagent enroll sends over a ProtoEnroll connection: its token, a CSR
// for a key it made itself, and its facts. pmd records the memory the host reports here as
// what bounds the capacity it may declare later; an older agent sends no facts.
type EnrollRequest struct {
	Token string     `json:"token"`
	CSR   string     `json:"csr"` // PEM
	Facts *HostFacts `json:"facts,omitempty"`
}

// EnrollResponse carries the host's identity and its first certificate.
type EnrollResponse struct {
	HostID    string   `json:"host_id"`
	HostName  string   `json:"host_name"`
	Cert      string   `json:"cert"`    // PEM: leaf then intermediate
	RootCA    string   `json:"root_ca"` // PEM
	Heartbeat Duration `json:"heartbeat_interval"`
}

// RenewRequest is the agent's POST /v1/renew over the tunnel.
type RenewRequest struct {
	CSR string `json:"csr"` // PEM
}

// RenewResponse is a fresh certificate for the host.
type RenewResponse struct {
	Cert string `json:"cert"` // PEM: leaf then intermediate
}

// Host is a host as the admin API shows it.
type Host struct {
	ID         string     `json:"id" yaml:"id"`
	Name       string     `json:"name" yaml:"name"`
	Status     string     `json:"status" yaml:"status"`
	Facts      *HostFacts `json:"facts,omitempty" yaml:"facts,omitempty"`
	CreatedAt  time.Time  `json:"created_at" yaml:"created_at"`
	EnrolledAt *time.Time `json:"enrolled_at,omitempty" yaml:"enrolled_at,omitempty"`
	LastSeenAt *time.Time `json:"last_seen_at,omitempty" yaml:"last_seen_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty" yaml:"revoked_at,omitempty"`
	// CertSerial and CertExpiresAt describe the newest certificate issued to the host.
	CertSerial    string     `json:"cert_serial,omitempty" yaml:"cert_serial,omitempty"`
	CertExpiresAt *time.Time `json:"cert_expires_at,omitempty" yaml:"cert_expires_at,omitempty"`
	// Connected is true while pmd holds a tunnel session for the host.
	Connected bool `json:"connected" yaml:"connected"`
	Draining  bool `json:"draining" yaml:"draining"`
	// Capacity is what placement uses: the capacity the host declares, within CapacityLimit.
	// Bots and MemoryAllocated are what its bots take.
	Capacity        Capacity `json:"capacity" yaml:"capacity"`
	Bots            int      `json:"bots" yaml:"bots"`
	MemoryAllocated int64    `json:"memory_allocated" yaml:"memory_allocated"`
	// DeclaredCapacity is what the host's agent declares in its heartbeats.
	DeclaredCapacity Capacity `json:"declared_capacity" yaml:"declared_capacity"`
	// CapacityLimit bounds what the host may declare: an operator's setting (pmctl hosts set)
	// or else what the memory the host reported when it enrolled allows. A zero field means
	// pmd knows no bound, and places nothing on the host.
	CapacityLimit Capacity `json:"capacity_limit" yaml:"capacity_limit"`
	// CapacityLimitSource says where CapacityLimit comes from: CapacityFromOperator,
	// CapacityFromEnrollment, or "" when pmd knows nothing of the host's memory.
	CapacityLimitSource string `json:"capacity_limit_source,omitempty" yaml:"capacity_limit_source,omitempty"`
	// EnrolledMemory is the memory the host reported when it enrolled (or, for a host
	// enrolled before pmd recorded it, in its first heartbeat after); 0 when unknown.
	EnrolledMemory int64 `json:"enrolled_memory,omitempty" yaml:"enrolled_memory,omitempty"`
	// CapacityRefused says why pmd refused the capacity the host declares; empty when it
	// accepted it.
	CapacityRefused string `json:"capacity_refused,omitempty" yaml:"capacity_refused,omitempty"`
	// DedicatedBot is the id of the bot the host runs alone (it enrolled with a token made
	// for that bot); "" for a shared host.
	DedicatedBot string `json:"dedicated_bot,omitempty" yaml:"dedicated_bot,omitempty"`
}

// Where a host's capacity limit comes from.
const (
	CapacityFromOperator   = "operator"
	CapacityFromEnrollment = "enrollment"
)

// HostUpdate is the body of PATCH /v1/hosts/{ref}: an operator's capacity limit for the host.
// A nil field leaves that part of the limit as it is.
type HostUpdate struct {
	CapacityBots        *int   `json:"capacity_bots,omitempty"`
	CapacityMemoryBytes *int64 `json:"capacity_memory_bytes,omitempty"`
	// ClearCapacity drops the operator's limit, so the host is bounded by its enrollment
	// memory again; it cannot be combined with the fields above.
	ClearCapacity bool `json:"clear_capacity,omitempty"`
}

// TokenRequest is the body of POST /v1/hosts/tokens.
type TokenRequest struct {
	Name string `json:"name"`
	// TTL is how long the token stays valid; zero means pmd's default (1 h).
	TTL Duration `json:"ttl,omitempty"`
	// ForBot names a bot placed dedicated (by name or id): the host enrolled with the token
	// runs that bot and no other.
	ForBot string `json:"for_bot,omitempty"`
}

// TokenResponse carries a fresh enrollment token. It is shown once and stored only hashed.
type TokenResponse struct {
	Token     string    `json:"token" yaml:"token"`
	HostID    string    `json:"host_id" yaml:"host_id"`
	ExpiresAt time.Time `json:"expires_at" yaml:"expires_at"`
	// Server is pmd's agent address as a host should dial it (pmagent enroll --server).
	Server string `json:"server,omitempty" yaml:"server,omitempty"`
	// ForBot is the id of the bot the host will run alone, "" for a shared host.
	ForBot string `json:"for_bot,omitempty" yaml:"for_bot,omitempty"`
}

// Certificate kinds.
const (
	CertRoot         = "root"
	CertIntermediate = "intermediate"
	CertServer       = "server"
	CertAdmin        = "admin"
	CertAgent        = "agent"
)

// Certificate statuses as the admin API shows them.
const (
	// CertValid is accepted at a handshake.
	CertValid = "valid"
	// CertSuperseded is an agent certificate the host has renewed: accepted at handshakes
	// only until its overlap ends, and retired as soon as the host connects with the newer.
	CertSuperseded = "superseded"
	CertRevoked    = "revoked"
	CertExpired    = "expired"
)

// Certificate is an issued certificate as the admin API shows it.
type Certificate struct {
	Serial    string     `json:"serial" yaml:"serial"`
	Kind      string     `json:"kind" yaml:"kind"`
	Subject   string     `json:"subject" yaml:"subject"`
	HostID    string     `json:"host_id,omitempty" yaml:"host_id,omitempty"`
	NotBefore time.Time  `json:"not_before" yaml:"not_before"`
	NotAfter  time.Time  `json:"not_after" yaml:"not_after"`
	RevokedAt *time.Time `json:"revoked_at,omitempty" yaml:"revoked_at,omitempty"`
	// SupersededAt is when a renewal replaced this agent certificate.
	SupersededAt *time.Time `json:"superseded_at,omitempty" yaml:"superseded_at,omitempty"`
	// Status is CertValid, CertSuperseded, CertRevoked or CertExpired, as of the answer.
	Status string `json:"status" yaml:"status"`
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID     int64     `json:"id" yaml:"id"`
	Time   time.Time `json:"time" yaml:"time"`
	Actor  string    `json:"actor" yaml:"actor"`
	Action string    `json:"action" yaml:"action"`
	Target string    `json:"target" yaml:"target"`
	Detail string    `json:"detail,omitempty" yaml:"detail,omitempty"`
}
