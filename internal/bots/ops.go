package bots

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// lookup finds a bot by id or name.
func (s *Service) lookup(ctx context.Context, st *store.Store, ref string) (store.Bot, error) {
	b, err := st.GetBot(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		b, err = st.GetBotByName(ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.Bot{}, wire.Errorf(wire.CodeNotFound, "no bot %q", ref)
	}
	return b, err
}

// Get returns one bot by id or name.
func (s *Service) Get(ctx context.Context, ref string) (wire.Bot, error) {
	b, err := s.lookup(ctx, s.store, ref)
	if err != nil {
		return wire.Bot{}, err
	}
	var h store.Host
	if b.HostID != "" {
		if h, err = s.store.GetHost(ctx, b.HostID); err != nil {
			return wire.Bot{}, err
		}
	}
	return s.toWire(b, h), nil
}

// List returns every bot.
func (s *Service) List(ctx context.Context) ([]wire.Bot, error) {
	bs, err := s.store.ListBots(ctx)
	if err != nil {
		return nil, err
	}
	return s.withHosts(ctx, bs)
}

// ListByOwner returns the bots of one owner (store.OwnerOperator or store.OwnerCustomer, and
// their id), by name.
func (s *Service) ListByOwner(ctx context.Context, kind, id string) ([]wire.Bot, error) {
	bs, err := s.store.ListBotsByOwner(ctx, Owner{Kind: kind, ID: id})
	if err != nil {
		return nil, err
	}
	return s.withHosts(ctx, bs)
}

// withHosts converts bots for the wire, with their hosts.
func (s *Service) withHosts(ctx context.Context, bs []store.Bot) ([]wire.Bot, error) {
	hs, err := s.store.ListHosts(ctx)
	if err != nil {
		return nil, err
	}
	hosts := map[string]store.Host{}
	for _, h := range hs {
		hosts[h.ID] = h
	}
	out := make([]wire.Bot, 0, len(bs))
	for _, b := range bs {
		out = append(out, s.toWire(b, hosts[b.HostID]))
	}
	return out, nil
}

// toWire derives a bot's status: what its host reports, unless the host cannot report.
func (s *Service) toWire(b store.Bot, h store.Host) wire.Bot {
	var sp spec
	_ = json.Unmarshal(b.Spec, &sp)
	w := wire.Bot{
		ID: b.ID, Name: b.Name, Owner: ownerString(b.Owner), Placement: b.Placement, Waiting: b.Waiting,
		HostID: b.HostID, HostName: h.Name, Image: sp.Image, Model: sp.Model,
		ToolsProfile: sp.ToolsProfile, Telegram: sp.Telegram, Resources: s.resources(sp), Desired: b.Desired,
		SpecVersion: b.SpecVersion, Purge: b.Purge, CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt,
		Status: wire.BotPending,
	}
	var ob wire.BotState
	if len(b.Observed) > 0 && json.Unmarshal(b.Observed, &ob) == nil {
		w.Status, w.Health, w.ContainerID, w.ObservedVersion = ob.Status, ob.Health, ob.ContainerID, ob.Version
		w.Restarts, w.StartedAt, w.MemoryUsage, w.Progress, w.LastError = ob.Restarts, ob.StartedAt, ob.MemoryUsage, ob.Progress, ob.LastError
		w.DiskUsage = ob.DiskUsage
	}
	switch {
	case b.Desired == store.DesiredDeleted:
		w.Status = wire.BotDeleting
	case b.HostID == "":
		w.Status = wire.BotWaiting
	case !s.fleet.Reachable(h.ID) && len(b.Observed) > 0:
		w.Status, w.Health = wire.BotUnknown, ""
		if w.LastError == "" {
			w.LastError = "host " + h.Name + " is " + s.fleet.Status(h)
		}
	}
	return w
}

// SetDesired starts or stops a bot.
func (s *Service) SetDesired(ctx context.Context, actor, ref, desired string) (wire.Bot, error) {
	now := s.cfg.Now().UTC()
	var b store.Bot
	err := s.store.InTx(ctx, func(tx *store.Store) error {
		var err error
		if b, err = s.lookup(ctx, tx, ref); err != nil {
			return err
		}
		if b.Desired == store.DesiredDeleted {
			return wire.Errorf(wire.CodeConflict, "bot %s is being deleted", b.Name)
		}
		if b.Desired == desired {
			return nil
		}
		if err := tx.SetBotDesired(ctx, b.ID, desired, false, now); err != nil {
			return err
		}
		action := map[string]string{store.DesiredRunning: "bot.start", store.DesiredStopped: "bot.stop"}[desired]
		_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: action, Target: b.Name, Detail: b.ID})
		return err
	})
	if err != nil {
		return wire.Bot{}, fmt.Errorf("%s bot %s: %w", desired, ref, err)
	}
	s.Kick(b.HostID)
	return s.Get(ctx, b.ID)
}

// Delete records that a bot must go; its host removes the container (and, with purge, the
// workspace) when it next hears from pmd — now if it is connected, else on reconnect — and
// the record goes when the host confirms.
func (s *Service) Delete(ctx context.Context, actor, ref string, purge bool) (wire.Bot, error) {
	now := s.cfg.Now().UTC()
	var b store.Bot
	err := s.store.InTx(ctx, func(tx *store.Store) error {
		var err error
		if b, err = s.lookup(ctx, tx, ref); err != nil {
			return err
		}
		detail := fmt.Sprintf("%s, purge %t", b.ID, purge)
		if b.HostID == "" {
			// No host has anything of it: the record goes now.
			if err := tx.DeleteBot(ctx, b.ID); err != nil {
				return err
			}
			detail = b.ID + ", never placed"
		} else if err := tx.SetBotDesired(ctx, b.ID, store.DesiredDeleted, purge || b.Purge, now); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "bot.delete", Target: b.Name, Detail: detail})
		return err
	})
	if err != nil {
		return wire.Bot{}, fmt.Errorf("delete bot %s: %w", ref, err)
	}
	if b.HostID == "" {
		s.log.Info("bot deleted", "bot_id", b.ID, "bot", b.Name, "actor", actor)
		b.Desired, b.Purge, b.UpdatedAt = store.DesiredDeleted, purge, now
		return s.toWire(b, store.Host{}), nil
	}
	s.Kick(b.HostID)
	return s.Get(ctx, b.ID)
}

// agent returns an HTTP client to the bot's host, and the bot.
func (s *Service) agent(ctx context.Context, ref string) (store.Bot, *http.Client, error) {
	b, err := s.lookup(ctx, s.store, ref)
	if err != nil {
		return b, nil, err
	}
	if b.Desired == store.DesiredDeleted {
		return b, nil, wire.Errorf(wire.CodeConflict, "bot %s is being deleted", b.Name)
	}
	if b.HostID == "" {
		return b, nil, wire.Errorf(wire.CodeConflict, "bot %s has no host yet: %s", b.Name, b.Waiting)
	}
	hc, err := s.fleet.Client(b.HostID)
	if err != nil {
		h, _ := s.store.GetHost(ctx, b.HostID)
		return b, nil, wire.Errorf(wire.CodeUnavailable, "bot %s: its host %s is not connected", b.Name, h.Name)
	}
	return b, hc, nil
}

// call makes one request to the bot's host and decodes a JSON answer into out.
func call(ctx context.Context, hc *http.Client, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return wire.Errorf(wire.CodeUnavailable, "host unreachable: %v", unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return agentError(wire.DecodeError(resp))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(out)
}

// maxAgentMessage bounds an error message from a host that pmd passes on.
const maxAgentMessage = 4 << 10

// agentError is an error a host answered with, as pmd passes it on: its message escaped for
// terminals and bounded, since the host (and the bot behind it) wrote it, and its code one
// that says what went wrong with the host's work. A host cannot make pmd answer an operator
// with an authentication or permission code, which pmctl would read as its own.
func agentError(e *wire.Error) *wire.Error {
	msg := termsafe.Line(e.Message)
	if len(msg) > maxAgentMessage {
		cut := maxAgentMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	code := e.Code
	switch code {
	case wire.CodeNotFound, wire.CodeConflict, wire.CodeInvalidArgument, wire.CodeUnavailable:
	default:
		code = wire.CodeUnavailable
	}
	return &wire.Error{Code: code, Message: msg, Status: wire.HTTPStatus(code)}
}

// audit records an operator's action or read on a bot before it happens: an audit entry that
// cannot be written stops it, so nothing is done or read unrecorded.
func (s *Service) audit(ctx context.Context, actor, action string, b store.Bot, detail string) error {
	_, err := s.store.AppendAudit(ctx, store.AuditEntry{Time: s.cfg.Now().UTC(), Actor: actor, Action: action, Target: b.Name, Detail: detail})
	if err != nil {
		return fmt.Errorf("%s bot %s: write the audit log: %w", strings.TrimPrefix(action, "bot."), b.Name, err)
	}
	return nil
}

func unwrap(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Restart restarts a bot's container now. Its host must be connected.
func (s *Service) Restart(ctx context.Context, actor, ref string) (wire.Bot, error) {
	b, hc, err := s.agent(ctx, ref)
	if err != nil {
		return wire.Bot{}, err
	}
	if b.Desired != store.DesiredRunning {
		return wire.Bot{}, wire.Errorf(wire.CodeConflict, "bot %s is stopped; start it instead", b.Name)
	}
	if err := s.audit(ctx, actor, "bot.restart", b, b.ID); err != nil {
		return wire.Bot{}, err
	}
	if err := call(ctx, hc, http.MethodPost, "/v1/bots/"+b.ID+"/restart", nil, nil); err != nil {
		return wire.Bot{}, fmt.Errorf("restart bot %s: %w", b.Name, err)
	}
	return s.Get(ctx, b.ID)
}

// Health asks the bot's host to probe its gateway now. The probes' bodies and errors come
// from the bot and its host, so they are escaped for terminals.
func (s *Service) Health(ctx context.Context, ref string) (wire.Probes, error) {
	var p wire.Probes
	b, hc, err := s.agent(ctx, ref)
	if err != nil {
		return p, err
	}
	if err := call(ctx, hc, http.MethodGet, "/v1/bots/"+b.ID+"/health", nil, &p); err != nil {
		return wire.Probes{}, err
	}
	for _, pr := range []*wire.Probe{&p.Startupz, &p.Healthz, &p.Readyz} {
		pr.Body, pr.Error = termsafe.String(pr.Body), termsafe.String(pr.Error)
	}
	return p, nil
}

// MaxLogTail bounds how many past log lines one request may ask for.
const MaxLogTail = 10000

// Logs streams a bot's container logs from its host into w, following if asked, until the
// stream ends or ctx does. The log is the customer's data: the read is audited for actor
// before it starts. It is passed on as the container wrote it; clients escape it for
// terminals (pmctl does, unless asked for it raw).
func (s *Service) Logs(ctx context.Context, actor, ref string, follow bool, tail int, w io.Writer) error {
	if tail < 0 || tail > MaxLogTail {
		return wire.Errorf(wire.CodeInvalidArgument, "tail %d: use 0 to %d", tail, MaxLogTail)
	}
	b, hc, err := s.agent(ctx, ref)
	if err != nil {
		return err
	}
	if err := s.audit(ctx, actor, "bot.logs", b, fmt.Sprintf("%s, tail %d, follow %t", b.ID, tail, follow)); err != nil {
		return err
	}
	q := url.Values{"follow": {strconv.FormatBool(follow)}, "tail": {strconv.Itoa(tail)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/bots/"+b.ID+"/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return wire.Errorf(wire.CodeUnavailable, "host unreachable: %v", unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return agentError(wire.DecodeError(resp))
	}
	return copyFlushing(ctx, w, resp.Body)
}

// copyFlushing copies src to w, flushing after every read so a followed log arrives line by
// line. The end of ctx is the normal end of a follow, not an error.
func copyFlushing(ctx context.Context, w io.Writer, src io.Reader) error {
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil // the client went away
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// Gateway sends one request to the bot's gateway through its host's tunnel, adding the
// gateway token: pmd holds it, and it never leaves pmd but towards the gateway.
func (s *Service) Gateway(ctx context.Context, ref, method, path string, header http.Header, body io.Reader) (*http.Response, error) {
	b, hc, err := s.agent(ctx, ref)
	if err != nil {
		return nil, err
	}
	sec, err := s.open(b)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent/v1/bots/"+b.ID+"/gateway"+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+sec.GatewayToken)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "host unreachable: %v", unwrap(err))
	}
	return resp, nil
}

// Chat makes one chat-completions round trip with the bot's gateway. The conversation is the
// customer's data: it is audited for actor (who, which bot and session, never what was said)
// before the message is sent. The reply is passed on as the model wrote it; errors from the
// gateway or the host are escaped for terminals.
func (s *Service) Chat(ctx context.Context, actor, ref string, req wire.ChatRequest) (wire.ChatResponse, error) {
	var out wire.ChatResponse
	if req.Message == "" {
		return out, wire.Errorf(wire.CodeInvalidArgument, "message is empty")
	}
	if len(req.Message) > 64<<10 {
		return out, wire.Errorf(wire.CodeInvalidArgument, "message is longer than 64 KiB")
	}
	session := req.Session
	if session == "" {
		session = "pmctl"
	}
	b, _, err := s.agent(ctx, ref)
	if err != nil {
		return out, err
	}
	if err := s.audit(ctx, actor, "bot.chat", b, fmt.Sprintf("%s, session %s, %d bytes", b.ID, termsafe.Line(session), len(req.Message))); err != nil {
		return out, err
	}
	ref = b.ID
	body, _ := json.Marshal(map[string]any{
		"model":    "openclaw",
		"messages": []map[string]string{{"role": "user", "content": req.Message}},
	})
	h := http.Header{"Content-Type": {"application/json"}, "X-Openclaw-Session-Key": {session}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	resp, err := s.Gateway(ctx, ref, http.MethodPost, "/v1/chat/completions", h, bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return out, wire.Errorf(wire.CodeUnavailable, "read gateway reply: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		var we wire.Error
		if json.Unmarshal(raw, &we) == nil && we.Code != "" {
			return out, agentError(&we)
		}
		var ge struct {
			Error struct{ Message, Type string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &ge)
		return out, agentError(wire.Errorf(wire.CodeUnavailable, "gateway answered %d: %s", resp.StatusCode, ge.Error.Message))
	}
	var cc struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage wire.Usage `json:"usage"`
	}
	if err := json.Unmarshal(raw, &cc); err != nil || len(cc.Choices) == 0 {
		return out, wire.Errorf(wire.CodeUnavailable, "gateway reply is not a chat completion")
	}
	return wire.ChatResponse{Reply: cc.Choices[0].Message.Content, Model: cc.Model, Usage: cc.Usage}, nil
}
