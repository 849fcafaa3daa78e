package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/token"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// MaxTokenTTL bounds how long an enrollment token may live.
const MaxTokenTTL = 7 * 24 * time.Hour

// CreateToken makes a one-time enrollment token for the host called name, creating the host
// as pending if it does not exist. A host that has enrolled or was revoked gets no new token.
func (f *Fleet) CreateToken(ctx context.Context, actor, name string, ttl time.Duration) (wire.TokenResponse, error) {
	return f.createToken(ctx, actor, name, ttl, "")
}

// CreateTokenForBot is CreateToken for the dedicated host of one bot, named by id or name:
// the host enrolled with the token runs that bot and no other. The bot must be placed
// dedicated and not yet have a host; the token goes if the bot does.
func (f *Fleet) CreateTokenForBot(ctx context.Context, actor, name string, ttl time.Duration, botRef string) (wire.TokenResponse, error) {
	if botRef == "" {
		return wire.TokenResponse{}, wire.Errorf(wire.CodeInvalidArgument, "no bot named for the dedicated host %s", name)
	}
	return f.createToken(ctx, actor, name, ttl, botRef)
}

// dedicatedBot finds the bot a dedicated host's token is for, and checks it can have one.
func dedicatedBot(ctx context.Context, tx *store.Store, ref string) (store.Bot, error) {
	b, err := tx.GetBot(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		b, err = tx.GetBotByName(ctx, ref)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return b, wire.Errorf(wire.CodeNotFound, "no bot %q", ref)
	case err != nil:
		return b, err
	case b.Desired == store.DesiredDeleted:
		return b, wire.Errorf(wire.CodeConflict, "bot %s is being deleted", b.Name)
	case b.Placement != store.PlacementDedicated:
		return b, wire.Errorf(wire.CodeConflict, "bot %s is placed %s: only a bot placed dedicated gets a host of its own", b.Name, b.Placement)
	case b.HostID != "":
		return b, wire.Errorf(wire.CodeConflict, "bot %s already has its host", b.Name)
	}
	return b, nil
}

func (f *Fleet) createToken(ctx context.Context, actor, name string, ttl time.Duration, botRef string) (wire.TokenResponse, error) {
	if !wire.ValidName(name) {
		return wire.TokenResponse{}, wire.Errorf(wire.CodeInvalidArgument, "host name %q: %s", name, wire.NameRule)
	}
	if ttl == 0 {
		ttl = f.cfg.TokenTTL
	}
	if ttl < time.Minute || ttl > MaxTokenTTL {
		return wire.TokenResponse{}, wire.Errorf(wire.CodeInvalidArgument, "token ttl %s: use between 1m and %s", ttl, MaxTokenTTL)
	}
	tok, err := token.New(pki.Fingerprint(f.ca.Root))
	if err != nil {
		return wire.TokenResponse{}, err
	}
	now := f.cfg.Now().UTC()
	var resp wire.TokenResponse
	err = f.store.InTx(ctx, func(tx *store.Store) error {
		h, err := tx.GetHostByName(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			h = store.Host{ID: newID("h-"), Name: name, CreatedAt: now}
			if err := tx.CreateHost(ctx, h); err != nil {
				return err
			}
		case err != nil:
			return err
		case h.RevokedAt != nil:
			return wire.Errorf(wire.CodeConflict, "host %s was revoked; remove it before enrolling a host by that name", name)
		case h.EnrolledAt != nil:
			return wire.Errorf(wire.CodeConflict, "host %s is already enrolled; remove it before enrolling it again", name)
		}
		t := store.Token{ID: tok.ID, HostID: h.ID, Hash: tok.Hash(), CreatedAt: now, ExpiresAt: now.Add(ttl)}
		detail := fmt.Sprintf("token %s, expires %s", tok.ID, t.ExpiresAt.Format(time.RFC3339))
		if botRef != "" {
			b, err := dedicatedBot(ctx, tx, botRef)
			if err != nil {
				return err
			}
			t.ForBot = b.ID
			detail += fmt.Sprintf(", dedicated to bot %s (%s)", b.Name, b.ID)
		}
		if err := tx.CreateToken(ctx, t); err != nil {
			return err
		}
		resp = wire.TokenResponse{Token: tok.Encode(), HostID: h.ID, ExpiresAt: t.ExpiresAt, Server: f.cfg.AgentAddress, ForBot: t.ForBot}
		return audit(ctx, tx, now, actor, "host.token.create", name, detail)
	})
	if err != nil {
		return wire.TokenResponse{}, fmt.Errorf("create token for %s: %w", name, err)
	}
	return resp, nil
}

// Hosts lists every host with its status.
func (f *Fleet) Hosts(ctx context.Context) ([]wire.Host, error) {
	hs, err := f.store.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]wire.Host, 0, len(hs))
	for _, h := range hs {
		out = append(out, f.toWire(h))
	}
	return out, nil
}

// Host finds a host by id or name.
func (f *Fleet) Host(ctx context.Context, ref string) (wire.Host, error) {
	h, err := f.lookup(ctx, f.store, ref)
	if err != nil {
		return wire.Host{}, err
	}
	return f.toWire(h), nil
}

func (f *Fleet) lookup(ctx context.Context, st *store.Store, ref string) (store.Host, error) {
	h, err := st.GetHost(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		h, err = st.GetHostByName(ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.Host{}, wire.Errorf(wire.CodeNotFound, "no host %q", ref)
	}
	return h, err
}

// Status derives a host's status from its record and its session.
func (f *Fleet) Status(h store.Host) string {
	switch {
	case h.RevokedAt != nil:
		return wire.HostRevoked
	case h.EnrolledAt == nil:
		return wire.HostPending
	case h.Draining:
		return wire.HostDraining
	case f.Reachable(h.ID):
		return wire.HostOnline
	}
	return wire.HostOffline
}

// Reachable reports whether the host has a session whose heartbeats are on time.
func (f *Fleet) Reachable(hostID string) bool {
	c := f.session(hostID)
	if c == nil {
		return false
	}
	c.mu.Lock()
	last := c.lastBeat
	c.mu.Unlock()
	return f.cfg.Now().Sub(last) <= missedBeats*f.cfg.HeartbeatInterval
}

func (f *Fleet) toWire(h store.Host) wire.Host {
	w := wire.Host{
		ID: h.ID, Name: h.Name, Status: f.Status(h), CreatedAt: h.CreatedAt,
		EnrolledAt: h.EnrolledAt, LastSeenAt: h.LastSeenAt, RevokedAt: h.RevokedAt,
		CertSerial: h.CertSerial, Connected: f.session(h.ID) != nil, Draining: h.Draining,
	}
	if c := f.session(h.ID); c != nil {
		c.mu.Lock()
		last := c.lastBeat
		c.mu.Unlock()
		if !last.IsZero() && (w.LastSeenAt == nil || last.After(*w.LastSeenAt)) {
			last = last.UTC()
			w.LastSeenAt = &last
		}
	}
	if len(h.Facts) > 0 {
		var facts wire.HostFacts
		if json.Unmarshal(h.Facts, &facts) == nil {
			w.Facts = &facts
		}
	}
	w.CertExpiresAt = h.CertExpiresAt
	w.DedicatedBot = h.DedicatedBot
	fillCapacity(&w, h)
	return w
}

// RevokeHost revokes a host and all its certificates, and ends its session at once.
func (f *Fleet) RevokeHost(ctx context.Context, actor, ref string) (wire.Host, error) {
	now := f.cfg.Now().UTC()
	var h store.Host
	err := f.store.InTx(ctx, func(tx *store.Store) error {
		var err error
		if h, err = f.lookup(ctx, tx, ref); err != nil {
			return err
		}
		if h.RevokedAt != nil {
			return nil // already revoked: nothing to do, nothing to audit
		}
		if err := tx.RevokeHost(ctx, h.ID, now); err != nil {
			return err
		}
		return audit(ctx, tx, now, actor, "host.revoke", h.Name, h.ID)
	})
	if err != nil {
		return wire.Host{}, fmt.Errorf("revoke host %s: %w", ref, err)
	}
	f.closeWhere(func(c *conn) bool { return c.hostID == h.ID })
	f.log.Info("host revoked", "host_id", h.ID, "actor", actor)
	return f.Host(ctx, h.ID)
}

// SetDraining stops (or resumes) placing new bots on a host. Its bots stay where they are.
func (f *Fleet) SetDraining(ctx context.Context, actor, ref string, draining bool) (wire.Host, error) {
	now := f.cfg.Now().UTC()
	var h store.Host
	err := f.store.InTx(ctx, func(tx *store.Store) error {
		var err error
		if h, err = f.lookup(ctx, tx, ref); err != nil {
			return err
		}
		if h.RevokedAt != nil {
			return wire.Errorf(wire.CodeConflict, "host %s is revoked", h.Name)
		}
		if h.Draining == draining {
			return nil
		}
		if err := tx.SetDraining(ctx, h.ID, draining); err != nil {
			return err
		}
		action := "host.undrain"
		if draining {
			action = "host.drain"
		}
		return audit(ctx, tx, now, actor, action, h.Name, h.ID)
	})
	if err != nil {
		return wire.Host{}, fmt.Errorf("drain host %s: %w", ref, err)
	}
	if !draining {
		f.hostChanged(h.ID)
	}
	return f.Host(ctx, h.ID)
}

// RemoveHost deletes a host that is not online: its tokens go, its certificates are revoked
// and kept for the record.
func (f *Fleet) RemoveHost(ctx context.Context, actor, ref string) error {
	now := f.cfg.Now().UTC()
	var h store.Host
	err := f.store.InTx(ctx, func(tx *store.Store) error {
		var err error
		if h, err = f.lookup(ctx, tx, ref); err != nil {
			return err
		}
		if st := f.Status(h); st == wire.HostOnline || st == wire.HostDraining && f.session(h.ID) != nil {
			return wire.Errorf(wire.CodeConflict, "host %s is %s; revoke it first or stop its agent", h.Name, st)
		}
		if bs, err := tx.ListBotsByHost(ctx, h.ID); err != nil {
			return err
		} else if len(bs) > 0 {
			return wire.Errorf(wire.CodeConflict, "host %s still has %d bots; delete or move them first", h.Name, len(bs))
		}
		if h.RevokedAt == nil {
			if err := tx.RevokeHost(ctx, h.ID, now); err != nil {
				return err
			}
		}
		if err := tx.DeleteHost(ctx, h.ID); err != nil {
			return err
		}
		return audit(ctx, tx, now, actor, "host.remove", h.Name, h.ID)
	})
	if err != nil {
		return fmt.Errorf("remove host %s: %w", ref, err)
	}
	f.closeWhere(func(c *conn) bool { return c.hostID == h.ID })
	return nil
}

// RevokeCert revokes one certificate by serial and ends any agent session that used it.
func (f *Fleet) RevokeCert(ctx context.Context, actor, serial string) (wire.Certificate, error) {
	now := f.cfg.Now().UTC()
	var c store.Certificate
	err := f.store.InTx(ctx, func(tx *store.Store) error {
		old, err := tx.GetCert(ctx, serial)
		if errors.Is(err, store.ErrNotFound) {
			return wire.Errorf(wire.CodeNotFound, "no certificate with serial %q", serial)
		}
		if err != nil {
			return err
		}
		if old.Kind == wire.CertRoot || old.Kind == wire.CertIntermediate || old.Kind == wire.CertServer {
			return wire.Errorf(wire.CodeInvalidArgument, "certificate %s is pmd's own %s certificate; it cannot be revoked here", serial, old.Kind)
		}
		c, err = tx.RevokeCert(ctx, serial, now)
		if errors.Is(err, store.ErrLastAdmin) {
			return wire.Errorf(wire.CodeConflict, "certificate %s of admin %s is the last valid admin certificate; revoking it would leave nobody able to use the admin API: create another admin first (pmctl admins create NAME)", serial, old.Subject)
		}
		if err != nil {
			return err
		}
		if old.RevokedAt != nil {
			return nil
		}
		return audit(ctx, tx, now, actor, "cert.revoke", serial, old.Kind+" "+old.Subject)
	})
	if err != nil {
		return wire.Certificate{}, fmt.Errorf("revoke certificate %s: %w", serial, err)
	}
	f.closeWhere(func(cn *conn) bool { return cn.serial == serial })
	return CertToWire(c, now), nil
}

// Certs lists every certificate pmd's CA has issued, with its status now.
func (f *Fleet) Certs(ctx context.Context) ([]wire.Certificate, error) {
	cs, err := f.store.ListCerts(ctx)
	if err != nil {
		return nil, err
	}
	now := f.cfg.Now()
	out := make([]wire.Certificate, 0, len(cs))
	for _, c := range cs {
		out = append(out, CertToWire(c, now))
	}
	return out, nil
}

// audit appends to the audit log inside the caller's transaction.
func audit(ctx context.Context, tx *store.Store, now time.Time, actor, action, target, detail string) error {
	_, err := tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: action, Target: target, Detail: detail})
	return err
}
