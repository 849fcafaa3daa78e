package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Logs streams the container's stdout and stderr, interleaved as the Engine sent them, as
// plain text. tail is how many of the last lines to start with; tail < 0 means all of them
// and 0 none (useful with follow). With follow the stream goes on until the container
// stops, ctx ends or the reader is closed; closing it ends the Engine request. A container
// that is gone is runtime.ErrNotFound. Bot containers have no TTY, so the Engine's stream
// is always multiplexed.
func (d *Docker) Logs(ctx context.Context, id string, follow bool, tail int) (io.ReadCloser, error) {
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow, Tail: "all"}
	if tail >= 0 {
		opts.Tail = strconv.Itoa(tail)
	}
	ctx, cancel := context.WithCancel(ctx)
	body, err := d.c.ContainerLogs(ctx, id, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("logs of container %s: %w", id, engineErr(err))
	}
	pr, pw := io.Pipe()
	r := &logReader{PipeReader: pr, cancel: cancel, body: body, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		// Both streams go to one writer: StdCopy writes from this one goroutine only.
		_, err := stdcopy.StdCopy(pw, pw, body)
		if ctx.Err() != nil {
			err = nil
		}
		_ = body.Close()
		cancel()
		pw.CloseWithError(err) // nil: readers see io.EOF
	}()
	return r, nil
}

// logReader is the read end of a demultiplexed log stream.
type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
	body   io.Closer
	done   chan struct{}
	once   sync.Once
}

// Close ends the Engine request and waits for the copying goroutine to finish.
func (r *logReader) Close() error {
	r.once.Do(func() {
		r.cancel()
		_ = r.body.Close()
		_ = r.PipeReader.Close()
		<-r.done
	})
	return nil
}
