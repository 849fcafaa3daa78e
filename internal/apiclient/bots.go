package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// CreateBot records a bot; pmd places and starts it in the background, so the bot returned
// is usually still pending. The request carries the bot's secrets; no response does.
func (c *Client) CreateBot(ctx context.Context, req wire.CreateBotRequest) (*wire.Bot, error) {
	return call[wire.Bot](ctx, c, http.MethodPost, "/v1/bots", req)
}

// ListBots returns every bot, in the server's order.
func (c *Client) ListBots(ctx context.Context) ([]wire.Bot, error) {
	return list[wire.Bot](ctx, c, "/v1/bots")
}

// GetBot returns the bot whose name or id is ref.
func (c *Client) GetBot(ctx context.Context, ref string) (*wire.Bot, error) {
	return call[wire.Bot](ctx, c, http.MethodGet, "/v1/bots/"+seg(ref), nil)
}

// EditBot changes what req names in the bot's spec and returns the bot.
func (c *Client) EditBot(ctx context.Context, ref string, req wire.EditBotRequest) (*wire.Bot, error) {
	return call[wire.Bot](ctx, c, http.MethodPatch, "/v1/bots/"+seg(ref), req)
}

// StopBot sets the bot's desired state to stopped and returns it.
func (c *Client) StopBot(ctx context.Context, ref string) (*wire.Bot, error) {
	return call[wire.Bot](ctx, c, http.MethodPost, "/v1/bots/"+seg(ref)+"/stop", nil)
}

// StartBot sets the bot's desired state to running and returns it.
func (c *Client) StartBot(ctx context.Context, ref string) (*wire.Bot, error) {
	return call[wire.Bot](ctx, c, http.MethodPost, "/v1/bots/"+seg(ref)+"/start", nil)
}

// RestartBot asks for the bot's container to be restarted and returns the bot.
func (c *Client) RestartBot(ctx context.Context, ref string) (*wire.Bot, error) {
	return call[wire.Bot](ctx, c, http.MethodPost, "/v1/bots/"+seg(ref)+"/restart", nil)
}

// DeleteBot records the bot's deletion and returns it with status deleting; its host removes
// the container in the background, and its workspace too when purge is true.
func (c *Client) DeleteBot(ctx context.Context, ref string, purge bool) (*wire.Bot, error) {
	q := url.Values{"purge": {strconv.FormatBool(purge)}}
	return call[wire.Bot](ctx, c, http.MethodDelete, "/v1/bots/"+seg(ref)+"?"+q.Encode(), nil)
}

// BotHealth returns the bot's last gateway probes.
func (c *Client) BotHealth(ctx context.Context, ref string) (*wire.Probes, error) {
	return call[wire.Probes](ctx, c, http.MethodGet, "/v1/bots/"+seg(ref)+"/health", nil)
}

// ChatBot sends one message to the bot's gateway and returns its reply. The client's timeout
// covers the whole round trip, model included.
func (c *Client) ChatBot(ctx context.Context, ref string, req wire.ChatRequest) (*wire.ChatResponse, error) {
	return call[wire.ChatResponse](ctx, c, http.MethodPost, "/v1/bots/"+seg(ref)+"/chat", req)
}

// LogsOptions select what BotLogs streams.
type LogsOptions struct {
	// Follow keeps the stream open for new lines until ctx ends or the reader is closed.
	Follow bool
	// Tail is how many lines from the end of the log to send first.
	Tail int
}

// BotLogs opens the bot's log stream: plain text, as the container wrote it. The caller must
// close the reader.
//
// Unlike the other methods, the client's timeout (WithTimeout) never bounds the stream itself.
// Without Follow it bounds the wait for pmd's response headers. With Follow it does not apply
// at all: pmd sends its headers with the first bytes of the log, and a quiet bot may write
// nothing for a long time (dialling and the TLS handshake still have their own limits). ctx
// bounds everything; once it is done, reads fail with its error.
func (c *Client) BotLogs(ctx context.Context, ref string, opts LogsOptions) (io.ReadCloser, error) {
	q := url.Values{"follow": {strconv.FormatBool(opts.Follow)}, "tail": {strconv.Itoa(opts.Tail)}}
	path := "/v1/bots/" + seg(ref) + "/logs?" + q.Encode()
	headerTimeout := c.http.Timeout
	if opts.Follow {
		headerTimeout = 0
	}
	return c.stream(ctx, path, headerTimeout)
}

// errHeaderTimeout cancels a stream whose response headers did not arrive in time.
var errHeaderTimeout = errors.New("no response headers in time")

// stream GETs path and returns the body of a 2xx answer for the caller to read as it arrives.
// It shares the client's transport (and so its TLS session and connections) but not its
// http.Client timeout, which would cut the body; headerTimeout, when positive, bounds the
// wait for the response headers only.
func (c *Client) stream(ctx context.Context, path string, headerTimeout time.Duration) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "text/plain")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	var timer *time.Timer
	if headerTimeout > 0 {
		timer = time.AfterFunc(headerTimeout, func() { cancel(errHeaderTimeout) })
	}
	hc := &http.Client{Transport: c.http.Transport, CheckRedirect: c.http.CheckRedirect, Jar: c.http.Jar}
	resp, err := hc.Do(req)
	if timer != nil && !timer.Stop() {
		// The timer fired, before or just after the headers: either way the request's context
		// is cancelled and the body unusable.
		if resp != nil {
			resp.Body.Close()
		}
		cancel(nil)
		if ctxErr := context.Cause(ctx); !errors.Is(ctxErr, errHeaderTimeout) {
			return nil, ctxErr // the caller's ctx ended first
		}
		return nil, fmt.Errorf("GET %s: timed out waiting for a response: %w", path, context.DeadlineExceeded)
	}
	if err != nil {
		cancel(nil)
		return nil, transportError(http.MethodGet, path, err)
	}
	if err := ctx.Err(); err != nil {
		// Over HTTP/2 a response can still come back after the cancellation that ended
		// it: the server saw the reset and answered with an empty body.
		resp.Body.Close()
		cancel(nil)
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer cancel(nil)
		defer resp.Body.Close()
		return nil, wire.DecodeError(resp)
	}
	return &streamBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel}, nil
}

// streamBody releases the request's context when closed. A stream the caller's ctx ended
// reads as that ctx's error, even when the end reached the body as a clean EOF (over HTTP/2
// the server may finish the stream as it sees the reset).
type streamBody struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && b.ctx.Err() != nil {
		err = b.ctx.Err()
	}
	return n, err
}

func (b *streamBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}
