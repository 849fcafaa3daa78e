// Command standin-gateway is an OpenClaw-compatible stand-in for the OpenClaw gateway. It
// answers the gateway's probes and its OpenAI-compatible HTTP API the way OpenClaw 2026.9.6
// does, with deterministic replies, for tests and offline demos where the real image cannot
// be pulled. See README.md for what it does and does not imitate.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(code)
}
