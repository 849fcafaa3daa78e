package bench

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// idleEngine is a container engine with no containers, so that the benchmark's agents answer
// pmd's bot calls as agents with an engine do, without Docker. pmd places no bots in the
// benchmark, so nothing is ever created.
type idleEngine struct{}

var _ agent.Runtime = idleEngine{}

var errIdleEngine = errors.New("the benchmark's engine runs no containers")

func (idleEngine) Version(context.Context) (string, error) { return "bench", nil }

func (idleEngine) Memory(context.Context, string) (int64, error) { return 0, nil }

func (idleEngine) List(context.Context, string) ([]runtime.Container, error) { return nil, nil }

func (idleEngine) EnsureImage(context.Context, string, func(string)) error { return errIdleEngine }

func (idleEngine) Create(context.Context, runtime.ContainerSpec) (runtime.Container, error) {
	return runtime.Container{}, errIdleEngine
}

func (idleEngine) Start(context.Context, string) error                  { return errIdleEngine }
func (idleEngine) Stop(context.Context, string, time.Duration) error    { return errIdleEngine }
func (idleEngine) Restart(context.Context, string, time.Duration) error { return errIdleEngine }
func (idleEngine) Remove(context.Context, string) error                 { return nil }

func (idleEngine) Inspect(context.Context, string) (runtime.Container, error) {
	return runtime.Container{}, runtime.ErrNotFound
}

func (idleEngine) Logs(context.Context, string, bool, int) (io.ReadCloser, error) {
	return nil, runtime.ErrNotFound
}

// Events reports nothing until ctx ends.
func (idleEngine) Events(ctx context.Context, _ string) (<-chan runtime.Event, <-chan error) {
	errs := make(chan error, 1)
	go func() {
		<-ctx.Done()
		errs <- ctx.Err()
		close(errs)
	}()
	return make(chan runtime.Event), errs
}
