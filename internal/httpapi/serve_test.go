package httpapi_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/httpapi"
)

// guard turns a hang into a failure; nothing here should come near it.
const guard = 10 * time.Second

func TestServeUntilCancelled(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "tls"}[useTLS]
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			sawTLS := make(chan bool, 1)
			srv := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					sawTLS <- r.TLS != nil
					io.WriteString(w, "ok")
				}),
				ErrorLog: log.New(io.Discard, "", 0),
			}
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			url := "http://" + ln.Addr().String() + "/"
			if useTLS {
				cert, pool := apitest.ServerTLS(t)
				srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
				client.Transport = &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}
				url = "https://" + ln.Addr().String() + "/"
			}

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- httpapi.Serve(ctx, srv, ln) }()

			resp, err := client.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("got %d %q, want 200 ok", resp.StatusCode, body)
			}
			if got := <-sawTLS; got != useTLS {
				t.Errorf("request arrived with TLS = %v, want %v", got, useTLS)
			}
			if useTLS {
				// TLS is required, not offered: plain HTTP gets no answer from the handler.
				plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
				if resp, err := plain.Get("http://" + ln.Addr().String() + "/"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						t.Errorf("plain HTTP was served on a TLS listener")
					}
				}
			}

			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("Serve after cancel = %v, want nil: stopping is not an error", err)
				}
			case <-time.After(guard):
				t.Fatal("Serve did not return after its context ended")
			}
			if resp, err := client.Get(url); err == nil {
				resp.Body.Close()
				t.Errorf("a request after Serve returned was answered with %d", resp.StatusCode)
			}
		})
	}
}

func TestServeContextAlreadyDone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := httpapi.Serve(ctx, &http.Server{Handler: http.NotFoundHandler()}, ln); err != nil {
		t.Errorf("Serve with a done context = %v, want nil", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("the listener is still open after Serve returned")
	}
}

func TestServeListenerFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = httpapi.Serve(t.Context(), &http.Server{Handler: http.NotFoundHandler()}, ln)
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve on a closed listener = %v, want an error wrapping net.ErrClosed", err)
	}
}

// pipeListener is an in-memory listener, so that the test below can run in a synctest bubble.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// TestServeWaitsForInFlightRequests: Serve gives in-flight requests their grace period before
// it returns, so a caller that closes its store once Serve returns does not pull it from under
// a running handler.
func TestServeWaitsForInFlightRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		entered, release := make(chan struct{}), make(chan struct{})
		var releaseOnce sync.Once
		defer releaseOnce.Do(func() { close(release) })
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				<-release
				io.WriteString(w, "finished")
			}),
			ErrorLog: log.New(io.Discard, "", 0),
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		served := make(chan error, 1)
		go func() { served <- httpapi.Serve(ctx, srv, ln) }()

		type result struct {
			status int
			body   string
			err    error
		}
		got := make(chan result, 1)
		go func() {
			client := &http.Client{Transport: &http.Transport{DialContext: ln.dial, DisableKeepAlives: true}}
			resp, err := client.Get("http://pmd/slow")
			if err != nil {
				got <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			got <- result{resp.StatusCode, string(b), err}
		}()

		<-entered
		cancel()
		synctest.Wait() // everything that can happen without the handler finishing has happened
		returnedEarly := false
		select {
		case err := <-served:
			t.Errorf("Serve returned (%v) while a request was still being handled", err)
			served <- err
			returnedEarly = true
		default:
		}

		releaseOnce.Do(func() { close(release) })
		if r := <-got; r.err != nil || r.status != http.StatusOK || r.body != "finished" {
			t.Errorf("in-flight request got %d %q %v, want 200 finished", r.status, r.body, r.err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
		if returnedEarly {
			// Fake time: let the shutdown Serve left behind finish, so the bubble can end.
			time.Sleep(time.Minute)
		}
	})
}
