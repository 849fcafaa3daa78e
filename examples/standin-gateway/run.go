package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1
	exitUsage  = 2
	exitConfig = 78 // EX_CONFIG, what OpenClaw uses for a config it refuses
)

// shutdownBudget is how long in-flight requests get after SIGTERM; the process exits well
// within a second (OpenClaw itself may take minutes).
const shutdownBudget = 800 * time.Millisecond

// run is the whole program: it parses args like `openclaw gateway`, loads the config, serves
// until ctx is cancelled (SIGTERM), drains and returns the exit code. onListen, when set, is
// told the bound address.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer, onListen func(net.Addr)) int {
	getenv := func(k string) string { v, _ := lookup(k); return v }
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "standin-gateway: "+format+"\n", a...)
		return code
	}

	noArgs := len(args) == 0
	if len(args) > 0 && args[0] == "gateway" {
		args = args[1:]
		if len(args) > 0 && args[0] == "run" {
			args = args[1:]
		}
	} else if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return fail(exitUsage, "unknown command %q (usage: standin-gateway gateway [--port N] [--bind loopback|lan] [--allow-unconfigured])", args[0])
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 0, "port to listen on (default gateway.port, then 18789)")
	bind := fs.String("bind", "", "bind mode: loopback|lan|auto|custom|tailnet (default gateway.bind)")
	allowUnconfigured := fs.Bool("allow-unconfigured", false, "start without gateway.mode=local")
	token := fs.String("token", "", "gateway token (overrides gateway.auth.token and OPENCLAW_GATEWAY_TOKEN)")
	password := fs.String("password", "", "gateway password (overrides gateway.auth.password)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	portSet := false
	fs.Visit(func(f *flag.Flag) { portSet = portSet || f.Name == "port" })

	path := configPath(getenv)
	cfg, found, err := loadConfig(path, lookup)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	if !*allowUnconfigured && (!found || cfg.Mode != "local") {
		current := cfg.Mode
		if current == "" {
			current = "unset"
		}
		return fail(exitConfig, "Gateway start blocked: set gateway.mode=local (current: %s) in %s or pass --allow-unconfigured.", current, path)
	}

	// Port: flag, then OPENCLAW_GATEWAY_PORT, then gateway.port, then 18789.
	listenPort := 18789
	switch {
	case portSet:
		listenPort = *port
	case getenv("OPENCLAW_GATEWAY_PORT") != "":
		p, err := strconv.Atoi(getenv("OPENCLAW_GATEWAY_PORT"))
		if err != nil {
			return fail(exitConfig, "OPENCLAW_GATEWAY_PORT %q is not a port", getenv("OPENCLAW_GATEWAY_PORT"))
		}
		listenPort = p
	case cfg.Port != 0:
		listenPort = cfg.Port
	}
	if listenPort < 0 || listenPort > 65535 {
		return fail(exitUsage, "--port %d is out of range", listenPort)
	}
	// Bind: flag, then gateway.bind; with no arguments at all the container's "lan", with
	// `gateway` and no --bind OpenClaw's own default "loopback".
	mode := *bind
	if mode == "" {
		mode = cfg.Bind
	}
	if mode == "" {
		mode = "loopback"
		if noArgs {
			mode = "lan"
		}
	}
	host := ""
	switch mode {
	case "loopback":
		host = "127.0.0.1"
	case "lan", "auto", "tailnet":
		host = "0.0.0.0" // the stand-in has no tailnet; it exposes all interfaces like lan
	case "custom":
		host = cfg.CustomBindHost
		if host == "" {
			return fail(exitConfig, "gateway.bind=custom needs gateway.customBindHost")
		}
	default:
		return fail(exitUsage, "--bind %q: want loopback|lan|auto|custom|tailnet", mode)
	}

	authMode, secret, err := resolveAuth(cfg, *token, *password, getenv)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	if authMode == "none" && host != "127.0.0.1" {
		return fail(exitConfig, "Refusing to bind gateway to %s (%s) without auth. Set gateway.auth.token (or OPENCLAW_GATEWAY_TOKEN) or gateway.auth.password.", mode, host)
	}

	delay := time.Second
	if s := getenv("STANDIN_STARTUP_DELAY"); s != "" {
		if delay, err = time.ParseDuration(s); err != nil || delay < 0 {
			return fail(exitConfig, "STANDIN_STARTUP_DELAY %q is not a duration", s)
		}
	}
	var readyFail []string
	for _, name := range strings.Split(getenv("STANDIN_READY_FAIL"), ",") {
		if name = strings.TrimSpace(name); name != "" {
			readyFail = append(readyFail, name)
		}
	}

	log := slog.New(slog.NewJSONHandler(stdout, nil))
	network := "tcp"
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		network = "tcp4" // 0.0.0.0 means IPv4 interfaces, as in OpenClaw, and logs as such
	}
	ln, err := net.Listen(network, net.JoinHostPort(host, strconv.Itoa(listenPort)))
	if err != nil {
		return fail(exitError, "listen: %v", err)
	}
	gw := newGateway(cfg, authMode, secret, readyFail, log, time.Now)
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("gateway listening on "+ln.Addr().String(), "addr", ln.Addr().String(), "bind", mode,
		"auth", authMode, "chat_completions", cfg.ChatCompletions, "version", version)
	if onListen != nil {
		onListen(ln.Addr())
	}

	// Startup finishes after the delay unless run is stopping; run waits for it so nothing
	// logs after run returns.
	startCtx, stopStart := context.WithCancel(ctx)
	startDone := make(chan struct{})
	go func() {
		defer close(startDone)
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
			gw.markStarted()
			log.Info("gateway started")
		case <-startCtx.Done():
		}
	}()
	defer func() { stopStart(); <-startDone }()

	select {
	case err := <-serveErr:
		return fail(exitError, "serve: %v", err)
	case <-ctx.Done():
	}
	// Cancellation is the normal way to stop, not an error.
	log.Info("received shutdown signal; draining")
	gw.drain()
	shCtx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		log.Warn("drain budget exceeded; closing connections", "err", err.Error())
		_ = srv.Close()
	}
	log.Info("gateway stopped")
	return exitOK
}

// resolveAuth picks the auth mode and the secret callers must present: flags, then config,
// then OPENCLAW_GATEWAY_TOKEN / OPENCLAW_GATEWAY_PASSWORD. Without any it is "none", which
// run allows only on loopback.
func resolveAuth(cfg *config, flagToken, flagPassword string, getenv func(string) string) (mode, secret string, err error) {
	tok := firstNonEmpty(flagToken, cfg.Token, getenv("OPENCLAW_GATEWAY_TOKEN"))
	pw := firstNonEmpty(flagPassword, cfg.Password, getenv("OPENCLAW_GATEWAY_PASSWORD"))
	switch cfg.AuthMode {
	case "token":
		if tok == "" {
			return "", "", fmt.Errorf("%w: gateway.auth.mode=token but no token is set (gateway.auth.token or OPENCLAW_GATEWAY_TOKEN)", errConfig)
		}
		return "token", tok, nil
	case "password":
		if pw == "" {
			return "", "", fmt.Errorf("%w: gateway.auth.mode=password but no password is set", errConfig)
		}
		return "password", pw, nil
	case "none":
		return "none", "", nil
	case "trusted-proxy":
		return "", "", fmt.Errorf("%w: gateway.auth.mode=trusted-proxy is not supported by the stand-in", errConfig)
	}
	switch {
	case tok != "":
		return "token", tok, nil
	case pw != "":
		return "password", pw, nil
	}
	return "none", "", nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
