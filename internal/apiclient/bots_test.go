package apiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// fakeBotsAPI echoes enough of the bot endpoints to check paths and bodies. The log of
// "mute" sends no headers until the client goes; "chatty" sends a line, waits 300ms, sends
// another and, followed, stays open.
func fakeBotsAPI() http.Handler {
	mux := http.NewServeMux()
	bot := func(w http.ResponseWriter, r *http.Request) {
		wire.WriteJSON(w, 200, wire.Bot{ID: "b_1", Name: r.PathValue("ref"), Status: wire.BotRunning})
	}
	mux.HandleFunc("GET /v1/bots", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("null")) })
	mux.HandleFunc("POST /v1/bots", func(w http.ResponseWriter, r *http.Request) {
		var req wire.CreateBotRequest
		json.NewDecoder(r.Body).Decode(&req)
		wire.WriteJSON(w, 201, wire.Bot{ID: "b_1", Name: req.Name, Status: wire.BotPending})
	})
	mux.HandleFunc("GET /v1/bots/{ref}", bot)
	mux.HandleFunc("POST /v1/bots/{ref}/{verb}", bot)
	mux.HandleFunc("DELETE /v1/bots/{ref}", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteJSON(w, 202, wire.Bot{Name: r.PathValue("ref"), Status: wire.BotDeleting, Purge: r.URL.Query().Get("purge") == "true"})
	})
	mux.HandleFunc("GET /v1/bots/{ref}/health", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteJSON(w, 200, wire.Probes{Healthz: wire.Probe{Status: 200, Body: "ok"}})
	})
	mux.HandleFunc("POST /v1/hosts/{ref}/{verb}", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteJSON(w, 200, wire.Host{Name: r.PathValue("ref"), Draining: r.PathValue("verb") == "drain"})
	})
	mux.HandleFunc("GET /v1/bots/{ref}/logs", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("ref") {
		case "mute":
			<-r.Context().Done()
		case "chatty":
			fmt.Fprintln(w, "one")
			http.NewResponseController(w).Flush()
			time.Sleep(300 * time.Millisecond)
			fmt.Fprintln(w, "two")
			http.NewResponseController(w).Flush()
			if r.URL.Query().Get("follow") == "true" {
				<-r.Context().Done()
			}
		default:
			wire.WriteError(w, wire.Errorf(wire.CodeNotFound, "bot %q not found", r.PathValue("ref")))
		}
	})
	return mux
}

func TestBotsClient(t *testing.T) {
	srv := apitest.NewServer(t, fakeBotsAPI())
	c, err := apiclient.New(&srv.Context)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	b, err := c.CreateBot(ctx, wire.CreateBotRequest{Name: "alice", Model: "m", APIKey: "k", Resources: wire.Resources{MemoryBytes: 1 << 30}})
	if err != nil || b.Name != "alice" {
		t.Fatalf("CreateBot = %v, %v", b, err)
	}
	bots, err := c.ListBots(ctx)
	if err != nil || bots == nil || len(bots) != 0 {
		t.Fatalf("ListBots on null = %#v, %v; want empty non-nil", bots, err)
	}
	for name, do := range map[string]func(context.Context, string) (*wire.Bot, error){
		"get": c.GetBot, "stop": c.StopBot, "start": c.StartBot, "restart": c.RestartBot,
	} {
		if b, err := do(ctx, "a/b"); err != nil || b.Name != "a/b" {
			t.Errorf("%s = %v, %v", name, b, err)
		}
	}
	if b, err := c.DeleteBot(ctx, "alice", true); err != nil || !b.Purge || b.Status != wire.BotDeleting {
		t.Errorf("DeleteBot = %+v, %v", b, err)
	}
	if p, err := c.BotHealth(ctx, "alice"); err != nil || p.Healthz.Body != "ok" {
		t.Errorf("BotHealth = %+v, %v", p, err)
	}
	if h, err := c.DrainHost(ctx, "edge-1"); err != nil || !h.Draining {
		t.Errorf("DrainHost = %+v, %v", h, err)
	}
	if h, err := c.UndrainHost(ctx, "edge-1"); err != nil || h.Draining {
		t.Errorf("UndrainHost = %+v, %v", h, err)
	}

	var got []string
	for _, r := range srv.Requests() {
		s := r.Method + " " + r.Path
		if r.Query != "" {
			s += "?" + r.Query
		}
		got = append(got, s)
	}
	want := []string{
		"POST /v1/bots", "GET /v1/bots",
		"DELETE /v1/bots/alice?purge=true", "GET /v1/bots/alice/health",
		"POST /v1/hosts/edge-1/drain", "POST /v1/hosts/edge-1/undrain",
	}
	// The map above runs in random order: compare the four bot calls as a set.
	calls := map[string]bool{}
	for _, s := range got[2:6] {
		calls[s] = true
	}
	for _, s := range []string{"GET /v1/bots/a%2Fb", "POST /v1/bots/a%2Fb/stop", "POST /v1/bots/a%2Fb/start", "POST /v1/bots/a%2Fb/restart"} {
		if !calls[s] {
			t.Errorf("no request %q in %q", s, got)
		}
	}
	if strings.Join(append(got[:2:2], got[6:]...), "\n") != strings.Join(want, "\n") {
		t.Errorf("requests = %q", got)
	}
	if body := srv.Requests()[0].Body; body != `{"name":"alice","model":"m","api_key":"k","resources":{"memory_bytes":1073741824,"cpus":0,"pids":0}}` {
		t.Errorf("create body = %s", body)
	}
}

func TestBotLogs(t *testing.T) {
	srv := apitest.NewServer(t, fakeBotsAPI())
	c, err := apiclient.New(&srv.Context, apiclient.WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("stream outlives the timeout", func(t *testing.T) {
		rc, err := c.BotLogs(t.Context(), "chatty", apiclient.LogsOptions{Tail: 10})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || string(b) != "one\ntwo\n" {
			t.Fatalf("read %q, %v", b, err)
		}
		if q := srv.Requests()[len(srv.Requests())-1].Query; q != "follow=false&tail=10" {
			t.Errorf("query = %q", q)
		}
	})

	t.Run("follow ends with ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		rc, err := c.BotLogs(ctx, "chatty", apiclient.LogsOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		buf := make([]byte, 0, 64)
		for !strings.Contains(string(buf), "two\n") {
			n, err := rc.Read(buf[len(buf):cap(buf)])
			if err != nil {
				t.Fatalf("read after %q: %v", buf, err)
			}
			buf = buf[:len(buf)+n]
		}
		cancel()
		if _, err := io.ReadAll(rc); !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: %v, want context.Canceled", err)
		}
	})

	t.Run("no headers in time", func(t *testing.T) {
		_, err := c.BotLogs(t.Context(), "mute", apiclient.LogsOptions{})
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("err = %v, want a timeout", err)
		}
	})

	t.Run("follow waits for a quiet bot", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(300*time.Millisecond, cancel) // three times the client's timeout
		_, err := c.BotLogs(ctx, "mute", apiclient.LogsOptions{Follow: true})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		c, err := apiclient.New(&srv.Context) // no timeout
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err = c.BotLogs(ctx, "mute", apiclient.LogsOptions{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v", err)
		}
		ctx, cancel = context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err = c.BotLogs(ctx, "mute", apiclient.LogsOptions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})

	t.Run("error answer", func(t *testing.T) {
		_, err := c.BotLogs(t.Context(), "nope", apiclient.LogsOptions{})
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeNotFound || we.Status != 404 {
			t.Errorf("err = %#v", err)
		}
	})
}
