// Package tlsadmit admits TLS connections at the rate a process can finish their handshakes.
//
// A listener that starts every handshake it accepts at once slows them all down together
// when thousands of clients arrive at the same moment (a fleet reconnecting after pmd
// restarts): each takes longer than its client waits, every client times out and retries, and
// nobody gets in. A Listener instead accepts each TCP connection at once, queues it, and runs
// the handshakes in a bounded pool of workers, oldest first. A connection that waited too long
// to be worth finishing, or that finds the queue full, is closed unfinished: that costs nothing,
// and its client retries after its backoff. What Accept returns has finished its handshake;
// an http.Server serving it still dispatches TLSNextProto by the protocol it negotiated.
package tlsadmit

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"
)

// Reasons a connection was closed without a handshake, as passed to Config.Shed.
const (
	ShedQueueFull = "queue_full"
	ShedWaited    = "waited"
)

// Config tunes a Listener. Zero fields take the defaults below.
type Config struct {
	// TLS is the server configuration every handshake uses. Required.
	TLS *tls.Config
	// Workers is how many handshakes run at once (default 32 per GOMAXPROCS: a handshake
	// spends most of its time waiting for its client, which during a storm is as busy as
	// the server).
	Workers int
	// Queue is how many accepted connections may wait for a worker (default 8192, a fleet's
	// worth, each a file descriptor); a connection arriving to a full queue is closed at
	// once.
	Queue int
	// MaxWait is how long a connection may wait for a worker (default 8 s): one that waited
	// longer is closed unfinished, since its client, which waits 10 s for the whole
	// handshake, would likely give up on it.
	MaxWait time.Duration
	// HandshakeTimeout bounds one handshake once started (default 5 s).
	HandshakeTimeout time.Duration
	// Shed, if set, is told the reason each time a connection is closed without a
	// handshake. Failed handshakes are not shed; they are logged at debug level.
	Shed func(reason string)
	// Now is the clock for MaxWait; nil means time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = 32 * runtime.GOMAXPROCS(0)
	}
	if c.Queue <= 0 {
		c.Queue = 8192
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 8 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.Shed == nil {
		c.Shed = func(string) {}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Listener is a net.Listener whose Accept returns *tls.Conn with the handshake done. It is
// safe for concurrent use.
type Listener struct {
	inner net.Listener
	cfg   Config
	log   *slog.Logger

	queue chan waiting
	ready chan *tls.Conn
	done  chan struct{} // closed by Close
	// ctx ends with done, interrupting handshakes in progress.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	mu        sync.Mutex
	err       error // why accepting stopped
}

// waiting is a connection accepted and not yet handshaken.
type waiting struct {
	conn  net.Conn
	since time.Time
}

// New starts admitting connections from inner, which the Listener then owns.
func New(inner net.Listener, cfg Config, log *slog.Logger) *Listener {
	cfg = cfg.withDefaults()
	l := &Listener{
		inner: inner, cfg: cfg, log: log,
		queue: make(chan waiting, cfg.Queue),
		ready: make(chan *tls.Conn),
		done:  make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1 + cfg.Workers)
	go l.acceptLoop()
	for range cfg.Workers {
		go l.worker()
	}
	return l
}

// acceptLoop takes every connection the kernel has as soon as it has it, so that waiting is
// measured here, where it can be bounded, and not in the kernel's backlog.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.log.Warn("accept failed; retrying", "error", err.Error(), "retry_in", backoff.String())
				select {
				case <-time.After(backoff):
					continue
				case <-l.done:
					return
				}
			}
			l.stop(err)
			return
		}
		backoff = 0
		select {
		case l.queue <- waiting{conn: c, since: l.cfg.Now()}:
		default:
			// Counted first: once closed, the client may already know.
			l.cfg.Shed(ShedQueueFull)
			c.Close()
		}
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (l *Listener) worker() {
	defer l.wg.Done()
	for {
		var w waiting
		select {
		case w = <-l.queue:
		case <-l.done:
			return
		}
		if l.cfg.Now().Sub(w.since) > l.cfg.MaxWait {
			l.cfg.Shed(ShedWaited)
			w.conn.Close()
			continue
		}
		tc := tls.Server(w.conn, l.cfg.TLS)
		ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			l.log.Debug("tls handshake failed", "remote", w.conn.RemoteAddr().String(), "error", err.Error())
			w.conn.Close()
			continue
		}
		select {
		case l.ready <- tc:
		case <-l.done:
			tc.NetConn().Close()
			return
		}
	}
}

// Accept returns the next connection whose handshake finished.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	}
}

// stop ends accepting with err, which Accept then returns.
func (l *Listener) stop(err error) {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		close(l.done)
		l.cancel()
		l.inner.Close()
	})
}

// Close stops accepting, closes the inner listener and every connection still waiting, and
// returns once the workers have stopped. Connections Accept already returned are the
// caller's.
func (l *Listener) Close() error {
	l.stop(net.ErrClosed)
	l.wg.Wait()
	for {
		select {
		case w := <-l.queue:
			w.conn.Close()
		default:
			return nil
		}
	}
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }
