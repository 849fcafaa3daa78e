package adminapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// writeBot answers with a bot, or passes err on.
func writeBot(w http.ResponseWriter, status int, b wire.Bot, err error) error {
	if err != nil {
		return err
	}
	wire.WriteJSON(w, status, b)
	return nil
}

func (a *API) createBot(w http.ResponseWriter, r *http.Request) error {
	var req wire.CreateBotRequest
	if err := httpapi.DecodeStrict(w, r, 64<<10, &req); err != nil {
		return err
	}
	b, err := a.Bots.Create(r.Context(), actor(r), newBot(actor(r), req))
	return writeBot(w, http.StatusCreated, b, err)
}

// newBot is what an operator's request makes: a bot the operator owns, with no idempotency
// key (pmctl does not retry a create).
func newBot(actor string, req wire.CreateBotRequest) bots.NewBot {
	placement := req.Placement
	if placement == "" {
		placement = bots.PlacementShared
	}
	return bots.NewBot{
		Name: req.Name, Owner: bots.Operator(strings.TrimPrefix(actor, "admin:")),
		Image: req.Image, Model: req.Model, ToolsProfile: req.ToolsProfile,
		APIKey: req.APIKey, TelegramToken: req.TelegramToken, Resources: req.Resources,
		Host: req.Host, Placement: placement, Force: req.Force,
	}
}

func (a *API) listBots(w http.ResponseWriter, r *http.Request) error {
	bs, err := a.Bots.List(r.Context())
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, bs)
	return nil
}

func (a *API) getBot(w http.ResponseWriter, r *http.Request) error {
	b, err := a.Bots.Get(r.Context(), r.PathValue("ref"))
	return writeBot(w, http.StatusOK, b, err)
}

func (a *API) editBot(w http.ResponseWriter, r *http.Request) error {
	var req wire.EditBotRequest
	if err := httpapi.DecodeStrict(w, r, 16<<10, &req); err != nil {
		return err
	}
	c := bots.Changes{Model: req.Model, APIKey: req.APIKey, TelegramToken: req.TelegramToken}
	reconfigure := c.Model != nil || c.APIKey != nil || c.TelegramToken != nil
	switch {
	case req.DiskBytes == 0 && !reconfigure:
		return wire.Errorf(wire.CodeInvalidArgument, "nothing to change: give disk_bytes, model, api_key or telegram_token")
	case req.DiskBytes != 0 && bots.ValidDisk(req.DiskBytes) != nil:
		// Checked before anything changes, so a bad limit leaves the rest undone too.
		return wire.Errorf(wire.CodeInvalidArgument, "%v", bots.ValidDisk(req.DiskBytes))
	}
	var b wire.Bot
	var err error
	if reconfigure {
		if b, err = a.Bots.Reconfigure(r.Context(), actor(r), r.PathValue("ref"), c); err != nil {
			return err
		}
	}
	if req.DiskBytes != 0 {
		b, err = a.Bots.SetDisk(r.Context(), actor(r), r.PathValue("ref"), req.DiskBytes)
	}
	return writeBot(w, http.StatusOK, b, err)
}

func (a *API) setDesired(desired string) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		b, err := a.Bots.SetDesired(r.Context(), actor(r), r.PathValue("ref"), desired)
		return writeBot(w, http.StatusOK, b, err)
	}
}

func (a *API) restartBot(w http.ResponseWriter, r *http.Request) error {
	b, err := a.Bots.Restart(r.Context(), actor(r), r.PathValue("ref"))
	return writeBot(w, http.StatusOK, b, err)
}

func (a *API) deleteBot(w http.ResponseWriter, r *http.Request) error {
	purge, err := boolParam(r, "purge")
	if err != nil {
		return err
	}
	b, err := a.Bots.Delete(r.Context(), actor(r), r.PathValue("ref"), purge)
	return writeBot(w, http.StatusAccepted, b, err)
}

func (a *API) botLogs(w http.ResponseWriter, r *http.Request) error {
	follow, err := boolParam(r, "follow")
	if err != nil {
		return err
	}
	tail := 100
	if s := r.URL.Query().Get("tail"); s != "" {
		if tail, err = strconv.Atoi(s); err != nil {
			return wire.Errorf(wire.CodeInvalidArgument, "tail %q is not a number", s)
		}
	}
	// Headers go out with the first bytes of the log, so errors before them still get a
	// proper status.
	lw := &lazyWriter{w: w}
	err = a.Bots.Logs(r.Context(), actor(r), r.PathValue("ref"), follow, tail, lw)
	if err != nil && !lw.started {
		return err
	}
	if !lw.started {
		lw.start()
	}
	return nil
}

// lazyWriter writes the logs' headers on the first write.
type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) start() {
	l.started = true
	l.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	l.w.Header().Set("X-Content-Type-Options", "nosniff")
	l.w.WriteHeader(http.StatusOK)
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.start()
	}
	return l.w.Write(p)
}

func (l *lazyWriter) Flush() {
	if !l.started {
		l.start()
	}
	if f, ok := l.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (a *API) botHealth(w http.ResponseWriter, r *http.Request) error {
	p, err := a.Bots.Health(r.Context(), r.PathValue("ref"))
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (a *API) chat(w http.ResponseWriter, r *http.Request) error {
	var req wire.ChatRequest
	if err := httpapi.DecodeStrict(w, r, 128<<10, &req); err != nil {
		return err
	}
	resp, err := a.Bots.Chat(r.Context(), actor(r), r.PathValue("ref"), req)
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, wire.Errorf(wire.CodeInvalidArgument, "%s=%q: use true or false", name, s)
	}
	return v, nil
}
