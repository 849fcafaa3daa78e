// Package bots is pmd's side of the bots: it validates and records what each bot should be,
// places it on a host, sends every host the complete set of bots it should run, and records
// what the hosts report back.
package bots

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/bytesize"
	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Defaults and limits of a bot's resources. OpenClaw idles near 0.8 GB and peaks near
// 1.35 GB; its own fleet tool gives each instance 2 GB, 2 CPUs and 512 PIDs.
const (
	DefaultImage     = "ghcr.io/openclaw/openclaw:2026.9.6"
	DefaultMemory    = 2 << 30
	MinMemory        = 1 << 30
	MaxMemory        = 64 << 30
	DefaultCPUs      = 2.0
	DefaultPIDs      = 512
	DefaultStartWait = 120 * time.Second
	DefaultStopWait  = 30 * time.Second
	// DefaultDiskLimit bounds what a bot's state and workspace take on its host unless the
	// bot or pmd's bot-disk-limit says otherwise.
	DefaultDiskLimit = 10 << 30
	MinDisk          = 16 << 20
	MaxDisk          = 16 << 40
)

// ValidDisk checks a disk limit.
func ValidDisk(n int64) error {
	if n < MinDisk || n > MaxDisk {
		return fmt.Errorf("disk limit %s: use %s to %s", bytesize.Format(n), bytesize.Format(MinDisk), bytesize.Format(MaxDisk))
	}
	return nil
}

// Config tunes the service.
type Config struct {
	// Image is the gateway image for bots that name none.
	Image string
	// StartTimeout is how long a bot may take to pass /startupz before it is failed.
	StartTimeout time.Duration
	StopTimeout  time.Duration
	// DiskLimit is the disk limit of bots created without one (DefaultDiskLimit when 0). A
	// bot records none of its own then, so a new setting applies to it.
	DiskLimit int64
	Now       func() time.Time
}

// Service manages bots. It is safe for concurrent use.
type Service struct {
	store *store.Store
	fleet *fleet.Fleet
	keys  *secret.Keyring
	cfg   Config
	log   *slog.Logger

	hostLocks sync.Map // host id → *sync.Mutex: one sync at a time per host
	gens      sync.Map // host id → *atomic.Uint64, bumped whenever its bots change
	reports   sync.Map // host id → report last recorded
	wg        sync.WaitGroup
}

// New returns a Service.
func New(st *store.Store, fl *fleet.Fleet, keys *secret.Keyring, cfg Config, log *slog.Logger) *Service {
	if cfg.Image == "" {
		cfg.Image = DefaultImage
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartWait
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DiskLimit <= 0 {
		cfg.DiskLimit = DefaultDiskLimit
	}
	return &Service{store: st, fleet: fl, keys: keys, cfg: cfg, log: log}
}

// spec is what the store keeps as a bot's spec (JSON). Secrets are not in it. A zero
// Resources.DiskBytes means pmd's DiskLimit.
type spec struct {
	Image        string         `json:"image"`
	Model        string         `json:"model"`
	ToolsProfile string         `json:"tools_profile"`
	Telegram     bool           `json:"telegram"`
	Resources    wire.Resources `json:"resources"`
}

// secrets are sealed as one JSON value bound to the bot's row.
type secrets struct {
	APIKey        string `json:"api_key"`
	TelegramToken string `json:"telegram_token,omitempty"`
	GatewayToken  string `json:"gateway_token"`
}

// SecretsAD is the associated data that binds a bot's sealed secrets to its row.
func SecretsAD(botID string) string { return "bots/" + botID + "/secrets" }

func (s *Service) seal(botID string, sec secrets) (string, error) {
	b, err := json.Marshal(sec)
	if err != nil {
		return "", err
	}
	return s.keys.Seal(b, SecretsAD(botID))
}

func (s *Service) open(b store.Bot) (secrets, error) {
	var sec secrets
	pt, err := s.keys.Open(b.Secrets, SecretsAD(b.ID))
	if err != nil {
		return sec, fmt.Errorf("open secrets of bot %s: %w", b.ID, err)
	}
	return sec, json.Unmarshal(pt, &sec)
}

// imageRE is a Docker image reference: [registry[:port]/]path[:tag][@sha256:<64 hex>].
var imageRE = regexp.MustCompile(`^([a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)

var digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// ValidImage checks an image reference's form, digest included.
func ValidImage(ref string) error {
	if _, digest, ok := strings.Cut(ref, "@"); ok && !digestRE.MatchString(digest) {
		return fmt.Errorf("image %q: its digest must be sha256:<64 lower-case hex digits>", ref)
	}
	if len(ref) > 512 || !imageRE.MatchString(ref) {
		return fmt.Errorf("image %q is not a valid reference (want [registry/]name[:tag][@sha256:<64 hex digits>])", ref)
	}
	return nil
}

// Create validates req, places the bot, records it, and tells its host. It returns at once;
// the host reports progress in its heartbeats.
func (s *Service) Create(ctx context.Context, actor string, req wire.CreateBotRequest) (wire.Bot, error) {
	sp, sec, err := s.validate(req)
	if err != nil {
		return wire.Bot{}, err
	}
	now := s.cfg.Now().UTC()
	b := store.Bot{
		ID: newID("b-"), Name: req.Name, SpecVersion: 1, Desired: store.DesiredRunning,
		CreatedAt: now, UpdatedAt: now,
	}
	if b.Spec, err = json.Marshal(sp); err != nil {
		return wire.Bot{}, err
	}
	if b.Secrets, err = s.seal(b.ID, sec); err != nil {
		return wire.Bot{}, err
	}
	err = s.store.InTx(ctx, func(tx *store.Store) error {
		if _, err := tx.GetBotByName(ctx, req.Name); err == nil {
			return wire.Errorf(wire.CodeConflict, "bot name %q is taken", req.Name)
		}
		host, err := s.place(ctx, tx, req.Host, sp.Resources.MemoryBytes)
		if err != nil {
			return err
		}
		b.HostID = host.ID
		if err := tx.CreateBot(ctx, b); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return wire.Errorf(wire.CodeConflict, "bot name %q is taken", req.Name)
			}
			return err
		}
		_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "bot.create", Target: req.Name,
			Detail: fmt.Sprintf("host %s, image %s, model %s", host.Name, sp.Image, sp.Model)})
		return err
	})
	if err != nil {
		return wire.Bot{}, fmt.Errorf("create bot %s: %w", req.Name, err)
	}
	s.log.Info("bot created", "bot_id", b.ID, "bot", b.Name, "host_id", b.HostID, "actor", actor)
	s.Kick(b.HostID)
	return s.Get(ctx, b.ID)
}

func (s *Service) validate(req wire.CreateBotRequest) (spec, secrets, error) {
	bad := func(format string, args ...any) (spec, secrets, error) {
		return spec{}, secrets{}, wire.Errorf(wire.CodeInvalidArgument, format, args...)
	}
	if !wire.ValidName(req.Name) {
		return bad("bot name %q: %s", req.Name, wire.NameRule)
	}
	if err := openclaw.ValidateModel(req.Model); err != nil {
		return bad("%v", err)
	}
	if _, err := openclaw.APIKeyEnv(req.Model); err != nil {
		return bad("%v", err)
	}
	if err := openclaw.ValidateAPIKey(req.APIKey); err != nil {
		return bad("api key: %v", err)
	}
	if req.TelegramToken != "" {
		if err := openclaw.ValidateTelegramToken(req.TelegramToken); err != nil {
			return bad("telegram token: %v", err)
		}
	}
	profile := req.ToolsProfile
	if profile == "" {
		profile = openclaw.DefaultToolsProfile
	}
	if err := openclaw.ValidateToolsProfile(profile); err != nil {
		return bad("%v", err)
	}
	image := req.Image
	if image == "" {
		image = s.cfg.Image
	}
	if err := ValidImage(image); err != nil {
		return bad("%v", err)
	}
	r := req.Resources
	if r.MemoryBytes == 0 {
		r.MemoryBytes = DefaultMemory
	}
	if r.CPUs == 0 {
		r.CPUs = DefaultCPUs
	}
	if r.PIDs == 0 {
		r.PIDs = DefaultPIDs
	}
	switch {
	case r.MemoryBytes < 0 || r.MemoryBytes > MaxMemory:
		return bad("memory %d bytes: use up to %s", r.MemoryBytes, gib(MaxMemory))
	case r.MemoryBytes < MinMemory && !req.Force:
		return bad("memory %s is below the gateway's minimum of %s (it idles near 0.8 GB); use force to allow it", gib(r.MemoryBytes), gib(MinMemory))
	case r.MemoryBytes < 64<<20:
		return bad("memory %s is too small to start anything", gib(r.MemoryBytes))
	case r.CPUs < 0.1 || r.CPUs > 64:
		return bad("cpus %g: use 0.1 to 64", r.CPUs)
	case r.PIDs < 64 || r.PIDs > 32768:
		return bad("pids %d: use 64 to 32768", r.PIDs)
	case r.DiskBytes != 0 && ValidDisk(r.DiskBytes) != nil:
		return bad("%v", ValidDisk(r.DiskBytes))
	}
	sp := spec{Image: image, Model: req.Model, ToolsProfile: profile, Telegram: req.TelegramToken != "", Resources: r}
	return sp, secrets{APIKey: req.APIKey, TelegramToken: req.TelegramToken, GatewayToken: newToken()}, nil
}

func gib(n int64) string {
	if n%(1<<30) == 0 {
		return fmt.Sprintf("%dGiB", n>>30)
	}
	return fmt.Sprintf("%dMiB", n>>20)
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// newToken is a gateway token: 32 random hex digits, as OpenClaw's fleet tool makes them.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
