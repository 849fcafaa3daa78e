// Command gateway is the stand-in for the OpenClaw gateway in this package's tests: it
// listens on :18789, answers /healthz and /resolve?name=NAME (the addresses NAME resolves to
// inside the container), writes one line to stdout and one to stderr at
// start and one to stdout per /healthz request, and exits on SIGTERM — unless
// GATEWAY_IGNORE_SIGTERM=1, which makes it wait for the Engine's SIGKILL.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if os.Getenv("GATEWAY_IGNORE_SIGTERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
		sigs = sigs[:1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("healthz")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true,"status":"live"}`)
	})
	// What a name resolves to inside the container (the pure-Go resolver reads /etc/hosts).
	mux.HandleFunc("GET /resolve", func(w http.ResponseWriter, r *http.Request) {
		addrs, err := net.DefaultResolver.LookupHost(r.Context(), r.URL.Query().Get("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		fmt.Fprint(w, strings.Join(addrs, " "))
	})
	srv := &http.Server{Addr: ":18789", Handler: mux}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()

	fmt.Fprintf(os.Stdout, "gateway stdout start uid=%d\n", os.Getuid())
	fmt.Fprintln(os.Stderr, "gateway stderr start")
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
	fmt.Println("gateway stopped")
}
