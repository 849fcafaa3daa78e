package standinprovider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is a Provider listening on an address. Close it when done.
type Server struct {
	*Provider
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	once sync.Once
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves a new Provider until Close or until
// ctx ends.
func Start(ctx context.Context, addr string, opts Options) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	p := New(opts)
	s := &Server{Provider: p, ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		err := s.srv.Serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("stand-in provider stopped", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// URL is the server's base, e.g. "http://127.0.0.1:41234": Anthropic clients use it as is,
// OpenAI clients add "/v1".
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server and its connections at once. It is safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.srv.Close()
	})
	return err
}
