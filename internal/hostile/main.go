// Command hostile acts as a hostile bot for the security tests: the tests build it into a
// bot image beside the stand-in gateway and run it inside a live bot container (docker exec),
// with the container's own user and limits, to try what a customer's code could try. It also
// serves the "outside" of the network tests from a network namespace the tests make.
//
// Each verb prints one line saying what happened and exits 0 when the attempt succeeded, 1
// when it failed (the line then says why), 2 on bad usage.
//
//	hostile id                         uid and gid
//	hostile write PATH [BYTES]         create or overwrite PATH with BYTES bytes (default 16)
//	hostile read PATH                  print PATH's first 4 KiB
//	hostile symlink PATH TARGET        replace PATH with a symlink to TARGET
//	hostile remove PATH                remove PATH
//	hostile swap DIR TARGET DURATION   for DURATION, keep replacing DIR/openclaw.json.tmp with
//	                                   a symlink to TARGET and removing DIR/openclaw.json
//	hostile fill DIR BYTES             write BYTES bytes of data (not sparse) into DIR/fill-*
//	hostile connect ADDR [TIMEOUT]     TCP connect to ADDR; print what the peer says first
//	hostile serve ADDR REPLY           accept TCP connections on ADDR and answer REPLY to each
package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		return usage()
	}
	verb, args := args[0], args[1:]
	switch {
	case verb == "id" && len(args) == 0:
		return ok("uid=%d gid=%d", os.Getuid(), os.Getgid())
	case verb == "write" && (len(args) == 1 || len(args) == 2):
		n := 16
		if len(args) == 2 {
			var err error
			if n, err = strconv.Atoi(args[1]); err != nil || n < 0 {
				return usage()
			}
		}
		if err := os.WriteFile(args[0], make([]byte, n), 0o644); err != nil {
			return fail(err)
		}
		return ok("wrote %d bytes to %s", n, args[0])
	case verb == "read" && len(args) == 1:
		f, err := os.Open(args[0])
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 4<<10))
		if err != nil {
			return fail(err)
		}
		return ok("%q", b)
	case verb == "symlink" && len(args) == 2:
		_ = os.Remove(args[0])
		if err := os.Symlink(args[1], args[0]); err != nil {
			return fail(err)
		}
		return ok("%s -> %s", args[0], args[1])
	case verb == "remove" && len(args) == 1:
		if err := os.Remove(args[0]); err != nil {
			return fail(err)
		}
		return ok("removed %s", args[0])
	case verb == "swap" && len(args) == 3:
		d, err := time.ParseDuration(args[2])
		if err != nil {
			return usage()
		}
		return swap(args[0], args[1], d)
	case verb == "fill" && len(args) == 2:
		n, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil || n < 0 {
			return usage()
		}
		return fill(args[0], n)
	case verb == "connect" && (len(args) == 1 || len(args) == 2):
		timeout := 3 * time.Second
		if len(args) == 2 {
			var err error
			if timeout, err = time.ParseDuration(args[1]); err != nil || timeout <= 0 {
				return usage()
			}
		}
		return connect(args[0], timeout)
	case verb == "serve" && len(args) == 2:
		return serve(args[0], args[1])
	}
	return usage()
}

func ok(format string, a ...any) int {
	fmt.Printf("ok: "+format+"\n", a...)
	return 0
}

func fail(err error) int {
	fmt.Printf("failed: %v\n", err)
	return 1
}

func usage() int {
	fmt.Fprintln(os.Stderr, "usage: hostile id | write PATH [BYTES] | read PATH | symlink PATH TARGET | remove PATH | swap DIR TARGET DURATION | fill DIR BYTES | connect ADDR [TIMEOUT] | serve ADDR REPLY")
	return 2
}

// swap is the symlink attack on an agent that rewrites DIR/openclaw.json through a temporary
// file: whenever the agent writes the config, the temporary name points at TARGET.
func swap(dir, target string, d time.Duration) int {
	tmp, cfg := filepath.Join(dir, "openclaw.json.tmp"), filepath.Join(dir, "openclaw.json")
	var swaps, errs int
	var last error
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if to, err := os.Readlink(tmp); err != nil || to != target {
			_ = os.Remove(tmp)
			if err := os.Symlink(target, tmp); err != nil {
				errs, last = errs+1, err
			} else {
				swaps++
			}
		}
		if err := os.Remove(cfg); err != nil && !os.IsNotExist(err) {
			errs, last = errs+1, err
		}
	}
	if swaps == 0 {
		return fail(fmt.Errorf("no swap made (%d errors, last: %v)", errs, last))
	}
	return ok("%d swaps, %d errors", swaps, errs)
}

func fill(dir string, n int64) int {
	f, err := os.CreateTemp(dir, "fill-*")
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	_, _ = rand.Read(buf)
	var done int64
	for done < n {
		k := int(min(int64(len(buf)), n-done))
		w, err := f.Write(buf[:k])
		done += int64(w)
		if err != nil {
			fmt.Printf("failed: after %d bytes: %v\n", done, err)
			return 1
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return ok("wrote %d bytes to %s", done, f.Name())
}

func connect(addr string, timeout time.Duration) int {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 256)
	n, _ := c.Read(b)
	return ok("connected to %s: %q", addr, b[:n])
}

func serve(addr, reply string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return fail(err)
		}
		go func() {
			defer c.Close()
			_, _ = io.WriteString(c, reply+"\n")
		}()
	}
}
