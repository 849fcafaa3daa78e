package docker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// Events reports start, stop, die, oom and health_status events of the containers
// labelled as agentID's, until ctx ends. Action is the Engine's word; health events keep
// their status ("health_status: healthy"). ExitCode is set on die. The event channel is
// closed when the stream ends; the error channel then delivers at most one error (none when
// ctx ended: cancellation is not an error) and is closed. An Engine that restarts ends the
// stream with an error; subscribe again.
func (d *Docker) Events(ctx context.Context, agentID string) (<-chan runtime.Event, <-chan error) {
	out := make(chan runtime.Event)
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	res := d.c.Events(ctx, client.EventsListOptions{
		Filters: make(client.Filters).
			Add("type", string(events.ContainerEventType)).
			Add("label", runtime.LabelAgent+"="+agentID),
	})
	go func() {
		defer close(errc)
		defer close(out)
		defer cancel()
		for {
			select {
			case m := <-res.Messages:
				ev, ok := toEvent(m)
				if !ok {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case err, ok := <-res.Err:
				if ok && err != nil && ctx.Err() == nil {
					errc <- fmt.Errorf("events of agent %s: %w", agentID, err)
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errc
}

// toEvent maps the Engine's message, and says whether it is one the agent wants.
func toEvent(m events.Message) (runtime.Event, bool) {
	switch m.Action {
	case events.ActionStart, events.ActionStop, events.ActionDie, events.ActionOOM:
	default:
		if !strings.HasPrefix(string(m.Action), string(events.ActionHealthStatus)) {
			return runtime.Event{}, false
		}
	}
	ev := runtime.Event{
		BotID:       m.Actor.Attributes[runtime.LabelBot],
		ContainerID: m.Actor.ID,
		Action:      string(m.Action),
	}
	if code, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil {
		ev.ExitCode = code
	}
	switch {
	case m.TimeNano != 0:
		ev.Time = time.Unix(0, m.TimeNano)
	case m.Time != 0:
		ev.Time = time.Unix(m.Time, 0)
	}
	return ev, true
}
