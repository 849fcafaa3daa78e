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
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

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
	// DefaultPlaceInterval is how often the placer looks for waiting bots unprompted.
	DefaultPlaceInterval = 5 * time.Second
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
	// PlaceInterval is how often the placer looks for bots that wait for a host, besides when
	// a host connects or gains room and when a bot goes (DefaultPlaceInterval when 0).
	PlaceInterval time.Duration
	// Models decides how bots reach their models (keys, credits, limits); nil gives bots no
	// model access (a fleet tested alone).
	Models Models
	Now    func() time.Time
}

// Service manages bots. It is safe for concurrent use.
type Service struct {
	store *store.Store
	fleet Fleet
	keys  *secret.Keyring
	cfg   Config
	log   *slog.Logger

	hostLocks sync.Map // host id → *sync.Mutex: one sync at a time per host
	gens      sync.Map // host id → *atomic.Uint64, bumped whenever its bots change
	reports   sync.Map // host id → report last recorded
	wg        sync.WaitGroup
	// wake wakes the placer (Run) when a host may have room or a bot may wait.
	wake chan struct{}
}

// Fleet is what the service needs of the hosts: their status, and a client to a connected
// host's agent. *fleet.Fleet is one; tests use their own.
type Fleet interface {
	// Status is a host's status (wire.HostOnline…).
	Status(h store.Host) string
	// Reachable reports whether the host's heartbeats are on time.
	Reachable(hostID string) bool
	// Client reaches a connected host's agent, or fails when it is not connected.
	Client(hostID string) (*http.Client, error)
}

var _ Fleet = (*fleet.Fleet)(nil)

// New returns a Service.
func New(st *store.Store, fl Fleet, keys *secret.Keyring, cfg Config, log *slog.Logger) *Service {
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
	if cfg.PlaceInterval <= 0 {
		cfg.PlaceInterval = DefaultPlaceInterval
	}
	return &Service{store: st, fleet: fl, keys: keys, cfg: cfg, log: log, wake: make(chan struct{}, 1)}
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
	// APIKey is the owner's own model key; "" means the platform's.
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

// Owner is who a bot belongs to: Operator(name) or Customer(id).
type Owner = store.Owner

// Operator is the owner of a bot an operator made: their admin name.
func Operator(name string) Owner { return Owner{Kind: store.OwnerOperator, ID: name} }

// Customer is the owner of a customer's bot: their user id.
func Customer(id string) Owner { return Owner{Kind: store.OwnerCustomer, ID: id} }

// Placements of a bot.
const (
	// PlacementShared bots go on any shared host with room.
	PlacementShared = store.PlacementShared
	// PlacementDedicated bots wait for a host enrolled for them (a token made with
	// pmctl hosts token create --for-bot) and go only there; no other bot goes on that host.
	PlacementDedicated = store.PlacementDedicated
)

// NewBot is what a bot is made from. Secrets travel only in it and are sealed at once.
type NewBot struct {
	// Name is unique among bots and follows wire.NameRule.
	Name  string
	Owner Owner
	// IdempotencyKey, when not "", makes creation idempotent: a bot already made with the key
	// is returned instead of a new one (a retried webhook or job). Keys are global, so a
	// caller prefixes its own ("stripe-sub:…").
	IdempotencyKey string
	// Image, ToolsProfile and zero Resources fields take pmd's defaults.
	Image        string
	Model        string
	ToolsProfile string
	// APIKey is the bot owner's own key for the model's provider; "" uses the platform's.
	APIKey        string
	TelegramToken string
	Resources     wire.Resources
	// Host pins the bot to a host (name or id), which must have room now; "" lets pmd place
	// it, or record it waiting when no host has room.
	Host string
	// Placement is PlacementShared ("" too) or PlacementDedicated.
	Placement string
	// Force allows memory below the gateway's minimum.
	Force bool
}

// Limits of what NewBot carries besides the spec.
const (
	maxOwnerID = 200
	maxKey     = 200
)

// Create validates nb, places the bot (or records it waiting for a host with room), records
// it and tells its host. It returns at once; the host reports progress in its heartbeats. A
// bot whose IdempotencyKey was used already is returned as it is.
func (s *Service) Create(ctx context.Context, actor string, nb NewBot) (wire.Bot, error) {
	var b store.Bot
	err := s.store.InTx(ctx, func(tx *store.Store) error {
		var err error
		b, err = s.CreateTx(ctx, tx, actor, nb)
		return err
	})
	if err != nil {
		return wire.Bot{}, err
	}
	s.Created(b)
	return s.Get(ctx, b.ID)
}

// CreateTx is Create inside the caller's transaction tx (a Store from InTx), so that the bot
// is recorded with whatever else the caller records (a webhook's event) or not at all. With
// an IdempotencyKey already used it returns that bot as it is (whatever its desired state),
// with no error and nothing written; a key used by another owner's bot is a conflict. The
// caller calls Created with the bot once tx has committed.
//
// It takes the placement lock (store.LockPlacement), which tx then holds until it ends: on
// PostgreSQL every other pmd's placement waits for it, so the caller should commit soon after
// and not call out to the network in between.
func (s *Service) CreateTx(ctx context.Context, tx *store.Store, actor string, nb NewBot) (store.Bot, error) {
	b, err := s.createTx(ctx, tx, actor, nb)
	if err != nil {
		return store.Bot{}, fmt.Errorf("create bot %s: %w", nb.Name, err)
	}
	return b, nil
}

func (s *Service) createTx(ctx context.Context, tx *store.Store, actor string, nb NewBot) (store.Bot, error) {
	sp, sec, err := s.validate(nb)
	if err != nil {
		return store.Bot{}, err
	}
	// Before the key is looked up: a concurrent creation with the same key, here or on another
	// pmd, has then committed or not begun.
	if err := tx.LockPlacement(ctx); err != nil {
		return store.Bot{}, err
	}
	if nb.IdempotencyKey != "" {
		old, err := tx.GetBotByIdempotencyKey(ctx, nb.IdempotencyKey)
		switch {
		case err == nil && old.Owner != nb.Owner:
			return store.Bot{}, wire.Errorf(wire.CodeConflict, "idempotency key %q belongs to another owner's bot", nb.IdempotencyKey)
		case err == nil:
			return old, nil
		case !errors.Is(err, store.ErrNotFound):
			return store.Bot{}, err
		}
	}
	if _, err := tx.GetBotByName(ctx, nb.Name); err == nil {
		return store.Bot{}, wire.Errorf(wire.CodeConflict, "bot name %q is taken", nb.Name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Bot{}, err
	}
	now := s.cfg.Now().UTC()
	b := store.Bot{
		ID: newID("b-"), Name: nb.Name, Owner: nb.Owner, IdempotencyKey: nb.IdempotencyKey, Placement: nb.Placement,
		SpecVersion: 1, Desired: store.DesiredRunning, CreatedAt: now, UpdatedAt: now,
	}
	if b.Spec, err = json.Marshal(sp); err != nil {
		return store.Bot{}, err
	}
	if b.Secrets, err = s.seal(b.ID, sec); err != nil {
		return store.Bot{}, err
	}
	host, why, err := s.place(ctx, tx, b, nb.Host, sp.Resources.MemoryBytes)
	if err != nil {
		return store.Bot{}, err
	}
	b.HostID, b.Waiting = host.ID, why
	if err := tx.CreateBot(ctx, b); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Bot{}, wire.Errorf(wire.CodeConflict, "bot name %q is taken", nb.Name)
		}
		return store.Bot{}, err
	}
	where := "host " + host.Name
	if host.ID == "" {
		where = "waiting: " + why
	}
	_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "bot.create", Target: nb.Name,
		Detail: fmt.Sprintf("%s, owner %s, %s, placement %s, image %s, model %s", b.ID, ownerString(b.Owner), where, b.Placement, sp.Image, sp.Model)})
	if err != nil {
		return store.Bot{}, err
	}
	return b, nil
}

// Created tells the bot's host about a bot CreateTx recorded, once its transaction has
// committed; a bot that waits for a host is placed by the placer (see Run). It is safe to
// call for a bot CreateTx returned from an earlier call.
func (s *Service) Created(b store.Bot) {
	if b.HostID == "" {
		s.log.Info("bot waits for a host", "bot_id", b.ID, "bot", b.Name, "waiting", b.Waiting)
		return
	}
	s.log.Info("bot created", "bot_id", b.ID, "bot", b.Name, "host_id", b.HostID)
	s.Kick(b.HostID)
}

// ownerString is an owner as the admin API shows it: "customer:u-1", "operator:alice", or
// "operator" for a bot made before owners were recorded.
func ownerString(o Owner) string {
	if o.ID == "" {
		return o.Kind
	}
	return o.Kind + ":" + o.ID
}

// plainText reports whether s is printable text of at most max bytes with no spaces at its
// ends: what an owner id or an idempotency key may be.
func plainText(s string, max int) bool {
	if s == "" || len(s) > max || strings.TrimSpace(s) != s || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func (s *Service) validate(nb NewBot) (spec, secrets, error) {
	bad := func(format string, args ...any) (spec, secrets, error) {
		return spec{}, secrets{}, wire.Errorf(wire.CodeInvalidArgument, format, args...)
	}
	switch {
	case nb.Owner.Kind != store.OwnerOperator && nb.Owner.Kind != store.OwnerCustomer:
		return bad("owner kind %q: use %s or %s", nb.Owner.Kind, store.OwnerOperator, store.OwnerCustomer)
	case nb.Owner.Kind == store.OwnerCustomer && !plainText(nb.Owner.ID, maxOwnerID):
		return bad("a customer's bot needs the customer's id: printable, at most %d bytes", maxOwnerID)
	case nb.Owner.ID != "" && !plainText(nb.Owner.ID, maxOwnerID):
		return bad("owner id: printable, at most %d bytes", maxOwnerID)
	case nb.IdempotencyKey != "" && !plainText(nb.IdempotencyKey, maxKey):
		return bad("idempotency key: printable, at most %d bytes", maxKey)
	case nb.Placement != PlacementShared && nb.Placement != PlacementDedicated:
		return bad("placement %q: use %s or %s", nb.Placement, PlacementShared, PlacementDedicated)
	case nb.Placement == PlacementDedicated && nb.Host != "":
		return bad("a bot placed dedicated goes on a host enrolled for it, so it cannot name a host: create it, then a token with pmctl hosts token create NAME --for-bot %s", nb.Name)
	}
	if !wire.ValidName(nb.Name) {
		return bad("bot name %q: %s", nb.Name, wire.NameRule)
	}
	if err := validModel(nb.Model); err != nil {
		return bad("%v", err)
	}
	if nb.APIKey != "" {
		if err := openclaw.ValidateAPIKey(nb.APIKey); err != nil {
			return bad("api key: %v", err)
		}
	}
	if err := s.checkModels(nb.Model, nb.APIKey != ""); err != nil {
		return spec{}, secrets{}, err
	}
	if nb.TelegramToken != "" {
		if err := openclaw.ValidateTelegramToken(nb.TelegramToken); err != nil {
			return bad("telegram token: %v", err)
		}
	}
	profile := nb.ToolsProfile
	if profile == "" {
		profile = openclaw.DefaultToolsProfile
	}
	if err := openclaw.ValidateToolsProfile(profile); err != nil {
		return bad("%v", err)
	}
	image := nb.Image
	if image == "" {
		image = s.cfg.Image
	}
	if err := ValidImage(image); err != nil {
		return bad("%v", err)
	}
	r := nb.Resources
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
	case r.MemoryBytes < MinMemory && !nb.Force:
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
	sp := spec{Image: image, Model: nb.Model, ToolsProfile: profile, Telegram: nb.TelegramToken != "", Resources: r}
	return sp, secrets{APIKey: nb.APIKey, TelegramToken: nb.TelegramToken, GatewayToken: newToken()}, nil
}

// validModel checks a model and that the model endpoint serves its provider.
func validModel(model string) error {
	_, err := openclaw.Provider(model)
	return err
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
