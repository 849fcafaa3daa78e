package bench

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/hostfacts"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// The floor: the same hosts holding bare TLS 1.3 connections (client certificates verified
// against the fleet's root, as pmd does) and sending the same heartbeat bytes at the same
// interval, with no yamux, no HTTP and no store. pmd's memory and CPU per agent then read as
// a multiple of what a connection and its bytes cost at the least.

// floorResult is what one floor run measured.
type floorResult struct {
	Agents       int
	Online       time.Duration
	RSS, Heap    int64
	HeartbeatCPU time.Duration
}

// floorServer answers every length-prefixed heartbeat with a fixed, length-prefixed reply.
type floorServer struct {
	ln     net.Listener
	reply  []byte
	beats  atomic.Int64 // heartbeats answered
	online atomic.Int64 // connections that sent a first heartbeat
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startFloor(tb testing.TB, fx *fixture, interval time.Duration) *floorServer {
	tb.Helper()
	st, err := agent.LoadState(fx.hosts[0].Dir)
	if err != nil {
		tb.Fatal(err)
	}
	roots, err := st.RootPool()
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := apitest.ServerTLS(tb)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots,
	})
	if err != nil {
		tb.Fatal(err)
	}
	reply, _ := json.Marshal(wire.HeartbeatReply{Interval: wire.Duration(interval)})
	s := &floorServer{ln: ln, reply: frame(reply), conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.accept)
	return s
}

func (s *floorServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() { s.serve(c) })
	}
}

func (s *floorServer) serve(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	var hdr [4]byte
	buf := make([]byte, 0, 4<<10)
	for first := true; ; first = false {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > wire.MaxHeartbeatBytes {
			return
		}
		buf = buf[:0]
		if _, err := io.CopyN(sliceWriter{&buf}, c, int64(n)); err != nil {
			return
		}
		if _, err := c.Write(s.reply); err != nil {
			return
		}
		s.beats.Add(1)
		if first {
			s.online.Add(1)
		}
	}
}

// stop closes the listener and every connection, and waits for them.
func (s *floorServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

type sliceWriter struct{ b *[]byte }

func (w sliceWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// frame prefixes b with its length.
func frame(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// runFloor holds sc.Agents bare connections from a child process and measures the server's
// memory once all have sent a heartbeat, and its CPU per heartbeat over sc.CPUBeats
// intervals, as runScenario does for pmd.
func runFloor(tb testing.TB, fx *fixture, sc scenario) (res floorResult) {
	tb.Helper()
	fx.ensureEnrolled(tb, sc.Agents)
	manifest, err := fx.manifest(sc.Agents)
	if err != nil {
		tb.Fatal(err)
	}
	res.Agents = sc.Agents
	base := sampleMemory(true)
	s := startFloor(tb, fx, sc.Heartbeat)
	defer s.stop()
	ch, err := startChild(manifest, s.ln.Addr().String(), "", envMode+"=floor", envInterval+"="+sc.Heartbeat.String())
	if err != nil {
		tb.Fatalf("start the floor's connections: %v", err)
	}
	defer ch.stop()
	select {
	case <-ch.ready:
	case <-ch.exited:
		tb.Fatalf("floor process exited before starting: %s", ch.stderr.String())
	case <-time.After(time.Minute):
		tb.Fatalf("floor process did not start: %s", ch.stderr.String())
	}
	t0 := time.Now()
	deadline := t0.Add(sc.OnlineTimeout)
	for s.online.Load() < int64(sc.Agents) {
		select {
		case <-ch.exited:
			tb.Fatalf("floor process exited with %d of %d connected: %s", s.online.Load(), sc.Agents, tail(ch.stderr.String(), 2000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("floor: %d of %d connected after %s", s.online.Load(), sc.Agents, sc.OnlineTimeout)
		}
	}
	res.Online = time.Since(t0)
	up := sampleMemory(false)
	res.RSS, res.Heap = up.rss-base.rss, up.heap-base.heap

	cpu0, beats0 := cpuTime(), s.beats.Load()
	time.Sleep(time.Duration(sc.CPUBeats) * sc.Heartbeat)
	cpu, beats := cpuTime()-cpu0, s.beats.Load()-beats0
	if beats > 0 {
		res.HeartbeatCPU = cpu / time.Duration(beats)
	}
	return res
}

// runFloorFromEnv is the child's side of the floor: one bare TLS connection per host in the
// manifest, each sending the host's heartbeat at once and then every interval, until stdin
// closes.
func runFloorFromEnv(manifest, server string) error {
	interval, err := time.ParseDuration(os.Getenv(envInterval))
	if err != nil {
		return fmt.Errorf("%s: %w", envInterval, err)
	}
	b, err := os.ReadFile(manifest)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	fmt.Println(readyLine)
	for _, dir := range strings.Fields(string(b)) {
		wg.Go(func() {
			if err := floorHost(ctx, dir, server, interval); err != nil && ctx.Err() == nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		})
	}
	io.Copy(io.Discard, os.Stdin)
	cancel()
	wg.Wait()
	msg, _ := firstErr.Load().(string)
	fmt.Printf("%sfloor: %d connections failed %s\n", summaryPfx, failed.Load(), msg)
	return nil
}

// floorHost holds one host's connection, reconnecting with the agent's backoff after a
// failure, as an agent would.
func floorHost(ctx context.Context, dir, server string, interval time.Duration) error {
	st, err := agent.LoadState(dir)
	if err != nil {
		return err
	}
	cert, _, err := st.Certificate()
	if err != nil {
		return err
	}
	f := hostfacts.Collector{DiskPath: dir, AgentVersion: "bench"}
	hb, err := json.Marshal(wire.Heartbeat{Facts: f.Collect(ctx), Sent: time.Now(), Bots: []wire.BotState{}})
	if err != nil {
		return err
	}
	msg := frame(hb)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		InsecureSkipVerify: true, // the floor server's certificate is its own; the client's check is not the server's cost
	}
	var lastErr error
	for backoff := 500 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, 30*time.Second) {
		d := tls.Dialer{Config: cfg}
		c, err := d.DialContext(ctx, "tcp", server)
		if err == nil {
			err = floorBeat(ctx, c, msg, interval)
			c.Close()
		}
		lastErr = err
		select {
		case <-ctx.Done():
		case <-time.After(backoff/2 + rand.N(backoff/2)):
		}
	}
	if errors.Is(lastErr, context.Canceled) {
		return nil
	}
	return lastErr
}

func floorBeat(ctx context.Context, c net.Conn, msg []byte, interval time.Duration) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	reply := make([]byte, 4<<10)
	var hdr [4]byte
	for {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if int(n) > len(reply) {
			return fmt.Errorf("floor reply of %d bytes", n)
		}
		if _, err := io.ReadFull(c, reply[:n]); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
