package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Memory returns a running container's memory use as `docker stats` shows it: usage less
// the page cache the kernel can drop (inactive_file on cgroup v2, total_inactive_file on v1).
func (d *Docker) Memory(ctx context.Context, id string) (int64, error) {
	res, err := d.c.ContainerStats(ctx, id, client.ContainerStatsOptions{})
	if err != nil {
		return 0, fmt.Errorf("stats of container %s: %w", id, engineErr(err))
	}
	defer res.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&s); err != nil {
		return 0, fmt.Errorf("stats of container %s: %w", id, err)
	}
	used := s.MemoryStats.Usage
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := s.MemoryStats.Stats[k]; ok && v < used {
			used -= v
			break
		}
	}
	return int64(used), nil
}
