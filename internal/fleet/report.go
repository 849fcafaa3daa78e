package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Bounds of what a host reports about its bots. Free text is escaped for terminals first, then
// cut to its bound.
const (
	maxReportedBots = 10000
	maxEvents       = 10000
	maxProgress     = 1 << 10
	maxLastError    = 16 << 10 // it carries the gateway's last log lines
	maxProbeText    = 4 << 10
	maxEventDetail  = 4 << 10
)

// text escapes free text from a host for terminals and cuts it to max bytes.
func text(s string, max int) string {
	s = termsafe.String(s)
	if len(s) <= max {
		return s
	}
	const more = "…"
	cut := max - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// checkStates refuses bot states whose enums or ids are not what pmd knows, and escapes and
// bounds their free text in place. Every error is an invalid_argument *wire.Error naming the
// report and the bot.
func checkStates(what string, states []wire.BotState) error {
	if len(states) > maxReportedBots {
		return wire.Errorf(wire.CodeInvalidArgument, "%s: more than %d bots", what, maxReportedBots)
	}
	seen := make(map[string]bool, len(states))
	for i := range states {
		st := &states[i]
		bad := func(format string, args ...any) error {
			return wire.Errorf(wire.CodeInvalidArgument, "%s: bot %s: %s", what, termsafe.Line(st.ID), fmt.Sprintf(format, args...))
		}
		switch {
		case !wire.ValidBotID(st.ID):
			return wire.Errorf(wire.CodeInvalidArgument, "%s: bot id %q is not a bot id", what, termsafe.Line(st.ID))
		case seen[st.ID]:
			return bad("reported twice")
		case st.ContainerID != "" && !wire.LowerHex(st.ContainerID, 1, 64):
			return bad("container id %q is not a container id", termsafe.Line(st.ContainerID))
		case !wire.KnownBotStatus(st.Status):
			return bad("status %q is not one pmd knows", termsafe.Line(st.Status))
		case !wire.KnownHealth(st.Health):
			return bad("health %q is not one pmd knows", termsafe.Line(st.Health))
		case st.Version < 0 || st.Restarts < 0 || st.MemoryUsage < 0 || st.DiskUsage < 0:
			return bad("negative version, restarts, memory or disk usage")
		case st.HostPort < 0 || st.HostPort > math.MaxUint16:
			return bad("host port %d is not a port", st.HostPort)
		}
		seen[st.ID] = true
		st.Progress = text(st.Progress, maxProgress)
		st.LastError = text(st.LastError, maxLastError)
		if p := st.Probes; p != nil {
			for _, pr := range []*wire.Probe{&p.Startupz, &p.Healthz, &p.Readyz} {
				if pr.Status < 0 || pr.Status > 999 {
					return bad("probe status %d is not an HTTP status", pr.Status)
				}
				pr.Body, pr.Error = text(pr.Body, maxProbeText), text(pr.Error, maxProbeText)
			}
		}
	}
	return nil
}

// checkEvents refuses events whose action or bot id pmd does not know, escapes and bounds
// their details, and checks the states they carry with checkStates.
func checkEvents(ev *wire.Events) error {
	if len(ev.Events) > maxEvents {
		return wire.Errorf(wire.CodeInvalidArgument, "events: more than %d events", maxEvents)
	}
	for i := range ev.Events {
		e := &ev.Events[i]
		switch {
		case !wire.ValidBotID(e.BotID):
			return wire.Errorf(wire.CodeInvalidArgument, "events: bot id %q is not a bot id", termsafe.Line(e.BotID))
		case !wire.KnownEvent(e.Action):
			return wire.Errorf(wire.CodeInvalidArgument, "events: bot %s: action %q is not one pmd knows", e.BotID, termsafe.Line(e.Action))
		}
		e.Detail = text(e.Detail, maxEventDetail)
	}
	return checkStates("events", ev.Bots)
}

// DecodeEvents reads and checks an events body: at most wire.MaxHeartbeatBytes of JSON whose
// events and states are within bounds (see checkEvents). Every failure is a *wire.Error.
func DecodeEvents(w http.ResponseWriter, r *http.Request) (wire.Events, error) {
	var ev wire.Events
	if err := httpapi.Decode(w, r, wire.MaxHeartbeatBytes, &ev); err != nil {
		return ev, err
	}
	return ev, checkEvents(&ev)
}

// events records what a host reports as it happens. Events and states must be about the
// host's own bots; those about bots pmd does not know (deleted since) are dropped.
func (f *Fleet) events(w http.ResponseWriter, r *http.Request, c *conn, log *slog.Logger) error {
	ev, err := DecodeEvents(w, r)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(ev.Events)+len(ev.Bots))
	for _, e := range ev.Events {
		ids = append(ids, e.BotID)
	}
	for _, st := range ev.Bots {
		ids = append(ids, st.ID)
	}
	unknown, err := f.owned(r.Context(), c, ids, false, log)
	if err != nil {
		return err
	}
	for _, e := range ev.Events {
		if unknown[e.BotID] {
			continue
		}
		log.Info("bot event", "bot_id", e.BotID, "action", e.Action, "detail", e.Detail)
		f.cfg.Metrics.BotEvent(e.Action)
	}
	states := slices.DeleteFunc(ev.Bots, func(st wire.BotState) bool { return unknown[st.ID] })
	if f.observer != nil && len(states) > 0 {
		if err := f.observer.Observe(r.Context(), c.hostID, states, false); err != nil {
			return fmt.Errorf("record bot states: %w", err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// owned checks that every bot id a host reported is one of its own bots. An id of another
// host's bot refuses the whole report with permission_denied, and is logged as the host's
// attempt; the ids pmd does not know at all (bots deleted since) are returned for the caller
// to drop. With memo, a report naming the same bots as the last one that passed is not
// checked again, which keeps steady heartbeats off the database: a bot's host never changes,
// and a host cannot know the id of a bot pmd has not yet sent it.
func (f *Fleet) owned(ctx context.Context, c *conn, ids []string, memo bool, log *slog.Logger) (map[string]bool, error) {
	if f.observer == nil || len(ids) == 0 {
		return nil, nil
	}
	var key string
	if memo {
		sorted := slices.Clone(ids)
		slices.Sort(sorted)
		key = strings.Join(sorted, ",")
		c.mu.Lock()
		same := c.owned == key
		c.mu.Unlock()
		if same {
			return nil, nil
		}
	}
	foreign, unknown, err := f.observer.Owners(ctx, c.hostID, ids)
	if err != nil {
		return nil, fmt.Errorf("check bot owners: %w", err)
	}
	if len(foreign) > 0 {
		log.Warn("host reported other hosts' bots", "bot_ids", foreign)
		return nil, wire.Errorf(wire.CodePermissionDenied, "bot %s is not on this host", foreign[0])
	}
	if memo {
		c.mu.Lock()
		c.owned = key
		c.mu.Unlock()
	}
	if len(unknown) == 0 {
		return nil, nil
	}
	log.Debug("reports about unknown bots dropped", "bot_ids", unknown)
	out := make(map[string]bool, len(unknown))
	for _, id := range unknown {
		out[id] = true
	}
	return out, nil
}
