package bots

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Kick sends a host its desired set in the background, after any sync already running for
// it, so the host always ends with the newest set. A bot with no host has none to tell:
// Kick("") does nothing.
func (s *Service) Kick(hostID string) {
	if hostID == "" {
		return
	}
	s.changed(hostID)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Sync(ctx, hostID); err != nil {
			s.log.Warn("sync host failed", "host_id", hostID, "error", err.Error())
		}
	}()
}

// Wait waits for background syncs to end.
func (s *Service) Wait() { s.wg.Wait() }

// Connected is called by the fleet when a host's session opens: the host gets its set, and
// the placer looks for bots that wait (the host is online from its first heartbeat, which
// wakes the placer again: see HostChanged).
func (s *Service) Connected(hostID string) {
	s.Kick(hostID)
	s.wakePlacer()
}

// Sync sends the host the complete set of bots it should run. A host that is not connected
// gets it when it connects.
func (s *Service) Sync(ctx context.Context, hostID string) error {
	mu, _ := s.hostLocks.LoadOrStore(hostID, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	hc, err := s.fleet.Client(hostID)
	if err != nil {
		return nil // not connected: the set goes out on connect
	}
	set, err := s.Desired(ctx, hostID)
	if err != nil {
		return err
	}
	body, err := json.Marshal(set)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://agent/v1/bots", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return unwrap(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return wire.DecodeError(resp)
	}
	s.log.Debug("host synced", "host_id", hostID, "bots", len(set.Bots), "purge", len(set.Purge))
	return nil
}

// Desired is the set of bots a host should run, secrets included.
func (s *Service) Desired(ctx context.Context, hostID string) (wire.DesiredBots, error) {
	set := wire.DesiredBots{Bots: []wire.BotSpec{}}
	bs, err := s.store.ListBotsByHost(ctx, hostID)
	if err != nil {
		return set, err
	}
	for _, b := range bs {
		if b.Desired == store.DesiredDeleted {
			if b.Purge {
				set.Purge = append(set.Purge, b.ID)
			}
			continue
		}
		spec, err := s.botSpec(ctx, b)
		if err != nil {
			// One bot that cannot be built must not take the others down with it.
			s.log.Error("bot spec", "bot_id", b.ID, "error", err.Error())
			continue
		}
		set.Bots = append(set.Bots, spec)
	}
	return set, nil
}

func (s *Service) botSpec(ctx context.Context, b store.Bot) (wire.BotSpec, error) {
	var sp spec
	if err := json.Unmarshal(b.Spec, &sp); err != nil {
		return wire.BotSpec{}, err
	}
	sec, err := s.open(b)
	if err != nil {
		return wire.BotSpec{}, err
	}
	cfg, err := openclaw.Config(openclaw.Options{Model: sp.Model, Telegram: sp.Telegram, ToolsProfile: sp.ToolsProfile, ModelEndpoint: ModelEndpoint})
	if err != nil {
		return wire.BotSpec{}, err
	}
	provider, err := openclaw.Provider(sp.Model)
	if err != nil {
		return wire.BotSpec{}, err
	}
	// The container gets tokens only: its gateway token, its model token and its Telegram
	// token. Provider keys go to the agent's model endpoint, never into the container.
	token := modelToken(sec.GatewayToken)
	env := map[string]string{openclaw.EnvGatewayToken: sec.GatewayToken, openclaw.EnvModelToken: token}
	if sec.TelegramToken != "" {
		env[openclaw.EnvTelegramToken] = sec.TelegramToken
	}
	var access *wire.ModelAccess
	if s.cfg.Models != nil {
		if access, err = s.cfg.Models.Access(ctx, b, provider, sec.APIKey, token); err != nil {
			return wire.BotSpec{}, err
		}
	}
	return wire.BotSpec{
		ID: b.ID, Name: b.Name, Version: b.SpecVersion, Image: sp.Image, Running: b.Desired == store.DesiredRunning,
		Config: cfg, Env: env, Resources: s.resources(sp),
		StartTimeout: wire.Duration(s.cfg.StartTimeout), StopTimeout: wire.Duration(s.cfg.StopTimeout),
		Model: access,
	}, nil
}

// Observe records what a host reports about its bots. When complete, the report lists every
// bot the host runs, so a deleted bot missing from it is gone and its record goes too.
func (s *Service) Observe(ctx context.Context, hostID string, states []wire.BotState, complete bool) error {
	// A host repeats the same report heartbeat after heartbeat; when neither it nor the
	// host's bots changed since the last one recorded, there is nothing to do.
	raw, _ := json.Marshal(states)
	memo := report{raw: raw, complete: complete, gen: s.generation(hostID)}
	if last, ok := s.reports.Load(hostID); ok && last.(report).same(memo) {
		return nil
	}
	if err := s.observe(ctx, hostID, states, complete); err != nil {
		return err
	}
	s.reports.Store(hostID, memo)
	return nil
}

// report is the last report from a host that was recorded, and the host's generation then.
type report struct {
	raw      []byte
	complete bool
	gen      uint64
}

func (r report) same(o report) bool {
	return r.complete == o.complete && r.gen == o.gen && bytes.Equal(r.raw, o.raw)
}

// changed marks that a host's bots changed, so its next report is recorded in full.
func (s *Service) changed(hostID string) {
	g, _ := s.gens.LoadOrStore(hostID, new(atomic.Uint64))
	g.(*atomic.Uint64).Add(1)
}

func (s *Service) generation(hostID string) uint64 {
	if g, ok := s.gens.Load(hostID); ok {
		return g.(*atomic.Uint64).Load()
	}
	return 0
}

func (s *Service) observe(ctx context.Context, hostID string, states []wire.BotState, complete bool) error {
	bs, err := s.store.ListBotsByHost(ctx, hostID)
	if err != nil {
		return err
	}
	seen := make(map[string]wire.BotState, len(states))
	for _, st := range states {
		seen[st.ID] = st
	}
	now := s.cfg.Now().UTC()
	for _, b := range bs {
		st, ok := seen[b.ID]
		if !ok {
			if complete && b.Desired == store.DesiredDeleted {
				if err := s.store.DeleteBot(ctx, b.ID); err != nil {
					return err
				}
				s.log.Info("bot deleted", "bot_id", b.ID, "bot", b.Name, "host_id", hostID)
				s.wakePlacer() // its room on the host is free now
			}
			continue
		}
		raw, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if bytes.Equal(raw, b.Observed) {
			continue
		}
		if err := s.store.SetBotObserved(ctx, b.ID, raw, now); err != nil {
			return err
		}
	}
	return nil
}
