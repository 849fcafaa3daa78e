package agent

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// maxDesiredBytes bounds a desired set: specs carry configs and secrets, a few KiB each.
const maxDesiredBytes = 16 << 20

// routes adds the bot API pmd calls over the tunnel.
func (m *Bots) routes(mux *http.ServeMux, log *slog.Logger) {
	mux.Handle("PUT /v1/bots", httpapi.Handle(log, m.putDesired))
	mux.Handle("GET /v1/bots", httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		states, _ := m.Snapshot()
		wire.WriteJSON(w, http.StatusOK, states)
		return nil
	}))
	mux.Handle("POST /v1/bots/{id}/restart", httpapi.Handle(log, m.restart))
	mux.Handle("GET /v1/bots/{id}/logs", httpapi.Handle(log, m.logs))
	mux.Handle("GET /v1/bots/{id}/health", httpapi.Handle(log, m.health))
	mux.Handle("/v1/bots/{id}/gateway/", httpapi.Handle(log, m.gateway))
}

func (m *Bots) putDesired(w http.ResponseWriter, r *http.Request) error {
	var set wire.DesiredBots
	if err := httpapi.Decode(w, r, maxDesiredBytes, &set); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, b := range set.Bots {
		switch {
		case !validID(b.ID):
			return wire.Errorf(wire.CodeInvalidArgument, "bot id %q is not valid", b.ID)
		case seen[b.ID]:
			return wire.Errorf(wire.CodeInvalidArgument, "bot %s is in the set twice", b.ID)
		case b.Image == "" || len(b.Config) == 0 || string(b.Config) == "null":
			return wire.Errorf(wire.CodeInvalidArgument, "bot %s has no image or config", b.ID)
		}
		seen[b.ID] = true
	}
	m.SetDesired(set)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// container finds a bot's current container.
func (m *Bots) container(r *http.Request) (wire.BotState, error) {
	id := r.PathValue("id")
	m.mu.Lock()
	s, ok := m.states[id]
	var st wire.BotState
	if ok {
		st = s.BotState
	}
	m.mu.Unlock()
	if !ok || st.ContainerID == "" {
		return st, wire.Errorf(wire.CodeNotFound, "bot %s has no container on this host", id)
	}
	return st, nil
}

func (m *Bots) restart(w http.ResponseWriter, r *http.Request) error {
	st, err := m.container(r)
	if err != nil {
		return err
	}
	if err := m.firewallErr(); err != nil {
		return wire.Errorf(wire.CodeUnavailable, "%s", err.Error())
	}
	if problem := m.heldForDisk(st.ID); problem != "" {
		return wire.Errorf(wire.CodeConflict, "bot %s is kept stopped: %s", st.ID, problem)
	}
	if err := m.rt.Restart(r.Context(), st.ContainerID, defaultStopWait); err != nil {
		if errors.Is(err, runtime.ErrNotFound) {
			return wire.Errorf(wire.CodeNotFound, "bot %s's container is gone", st.ID)
		}
		return err
	}
	m.log.Info("bot restarted", "bot_id", st.ID)
	m.Kick()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (m *Bots) logs(w http.ResponseWriter, r *http.Request) error {
	st, err := m.container(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	follow := q.Get("follow") == "true"
	tail, err := strconv.Atoi(q.Get("tail"))
	if err != nil || tail < 0 {
		tail = 100
	}
	rc, err := m.rt.Logs(r.Context(), st.ContainerID, follow, tail)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			return nil // EOF, or the caller went away: the response is already under way
		}
	}
}

func (m *Bots) health(w http.ResponseWriter, r *http.Request) error {
	st, err := m.container(r)
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, m.probeAll(r.Context(), st.HostPort))
	return nil
}

// gateway proxies a request to the bot's gateway on 127.0.0.1: HTTP, SSE and WebSocket
// upgrades. It adds no X-Forwarded-For or X-Real-IP: the gateway refuses proxied requests
// from callers not in gateway.trustedProxies.
func (m *Bots) gateway(w http.ResponseWriter, r *http.Request) error {
	st, err := m.container(r)
	if err != nil {
		return err
	}
	if st.HostPort == 0 {
		return wire.Errorf(wire.CodeUnavailable, "bot %s is not running", st.ID)
	}
	target := &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(st.HostPort)}
	prefix := "/v1/bots/" + st.ID + "/gateway"
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(pr.In.URL.Path, prefix), "/")
			pr.Out.URL.RawPath = ""
			pr.Out.Host = target.Host
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "Forwarded"} {
				pr.Out.Header.Del(h)
			}
		},
		FlushInterval: -1, // stream SSE as it comes
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			wire.WriteError(w, wire.Errorf(wire.CodeUnavailable, "bot %s's gateway did not answer: %v", st.ID, err))
		},
		ErrorLog:  slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
		Transport: m.proxy,
	}
	rp.ServeHTTP(w, r)
	return nil
}
