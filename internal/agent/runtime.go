package agent

import (
	"context"
	"io"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// Runtime is what the agent needs from a container engine. runtime/docker implements it.
// Every method is idempotent where its name allows: removing what is gone, stopping what is
// stopped and starting what runs are not errors.
type Runtime interface {
	// Version is the engine's version, or why it cannot be reached.
	Version(ctx context.Context) (string, error)
	// List returns the bot containers labelled as owned by agentID.
	List(ctx context.Context, agentID string) ([]runtime.Container, error)
	// EnsureImage makes ref present, pulling it if needed and reporting progress lines;
	// runtime.ErrImageUnavailable when it is neither present nor pullable.
	EnsureImage(ctx context.Context, ref string, progress func(string)) error
	// Create creates (not starts) the bot's container and its own bridge network.
	Create(ctx context.Context, spec runtime.ContainerSpec) (runtime.Container, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Restart(ctx context.Context, id string, timeout time.Duration) error
	// Remove removes the bot's container and network; a bot with neither is not an error.
	Remove(ctx context.Context, botID string) error
	// Inspect reports one container; runtime.ErrNotFound when it is gone.
	Inspect(ctx context.Context, id string) (runtime.Container, error)
	// Memory is a running container's memory use in bytes.
	Memory(ctx context.Context, id string) (int64, error)
	// Logs streams the container's stdout and stderr as plain text.
	Logs(ctx context.Context, id string, follow bool, tail int) (io.ReadCloser, error)
	// Events reports agentID's containers' events until ctx ends; the error channel
	// delivers at most one error and is closed after it.
	Events(ctx context.Context, agentID string) (<-chan runtime.Event, <-chan error)
}
