package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// scrapeTimeout bounds the store reads one scrape makes.
const scrapeTimeout = 5 * time.Second

// State is where the fleet-state collector reads from: the fleet's hosts (with their bot
// usage filled in) and the bots, as the admin API lists them.
type State struct {
	Hosts func(context.Context) ([]wire.Host, error)
	Bots  func(context.Context) ([]wire.Bot, error)
	Log   *slog.Logger
}

var (
	hostsDesc = prometheus.NewDesc(namespace+"_hosts", "Hosts by status.", []string{"status"}, nil)
	hostBots  = prometheus.NewDesc(namespace+"_host_bots", "Bots placed on a host.", []string{"host"}, nil)
	hostCap   = prometheus.NewDesc(namespace+"_host_capacity_bots", "Bots a host has room for: what it declares, held to its limit.", []string{"host"}, nil)
	hostMem   = prometheus.NewDesc(namespace+"_host_memory_allocated_bytes", "Memory the bots placed on a host are given.", []string{"host"}, nil)
	hostMemC  = prometheus.NewDesc(namespace+"_host_capacity_memory_bytes", "Memory a host offers bots: what it declares, held to its limit.", []string{"host"}, nil)
	hostRef   = prometheus.NewDesc(namespace+"_host_capacity_refused", "1 if pmd refuses the capacity a host declares (more than its limit), else 0.", []string{"host"}, nil)
	botsDesc  = prometheus.NewDesc(namespace+"_bots", "Bots by desired state, observed status and health.", []string{"desired", "status", "health"}, nil)
	hostDisk  = prometheus.NewDesc(namespace+"_host_bot_disk_bytes", "Disk the bots on a host take (their state and workspace), as its agent last measured.", []string{"host"}, nil)
	overDisk  = prometheus.NewDesc(namespace+"_bots_over_disk_limit", "Bots whose state and workspace take more than their disk limit; their agents keep them stopped.", nil, nil)
	sessDesc  = prometheus.NewDesc(namespace+"_tunnel_sessions", "Agent tunnel sessions open now.", nil, nil)
	upDesc    = prometheus.NewDesc(namespace+"_store_up", "1 if the last scrape could read the store, else 0.", nil, nil)
)

// hostStatuses are reported even when zero, so alerts on them have a series to read.
var hostStatuses = []string{wire.HostPending, wire.HostOnline, wire.HostOffline, wire.HostDraining, wire.HostRevoked}

// Describe implements prometheus.Collector.
func (s State) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hostsDesc, hostBots, hostCap, hostMem, hostMemC, hostRef, botsDesc, hostDisk, overDisk, sessDesc, upDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one read of hosts and one of bots per scrape.
func (s State) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	up := 1.0
	if hosts, err := s.Hosts(ctx); err != nil {
		s.Log.Warn("metrics: read hosts", "error", err.Error())
		up = 0
	} else {
		byStatus := map[string]int{}
		sessions := 0
		for _, h := range hosts {
			byStatus[h.Status]++
			if h.Connected {
				sessions++
			}
			if h.Status == wire.HostRevoked {
				continue
			}
			gauge(ch, hostBots, float64(h.Bots), h.Name)
			gauge(ch, hostCap, float64(h.Capacity.Bots), h.Name)
			gauge(ch, hostMem, float64(h.MemoryAllocated), h.Name)
			gauge(ch, hostMemC, float64(h.Capacity.MemoryBytes), h.Name)
			refused := 0.0
			if h.CapacityRefused != "" {
				refused = 1
			}
			gauge(ch, hostRef, refused, h.Name)
		}
		for _, st := range hostStatuses {
			gauge(ch, hostsDesc, float64(byStatus[st]), st)
		}
		gauge(ch, sessDesc, float64(sessions))
	}
	if bots, err := s.Bots(ctx); err != nil {
		s.Log.Warn("metrics: read bots", "error", err.Error())
		up = 0
	} else {
		type key struct{ desired, status, health string }
		counts := map[key]int{}
		disk := map[string]int64{}
		over := 0
		for _, b := range bots {
			counts[key{b.Desired, b.Status, b.Health}]++
			if b.HostName != "" {
				disk[b.HostName] += b.DiskUsage
			}
			if b.Resources.DiskBytes > 0 && b.DiskUsage > b.Resources.DiskBytes {
				over++
			}
		}
		for k, n := range counts {
			gauge(ch, botsDesc, float64(n), k.desired, k.status, k.health)
		}
		for host, n := range disk {
			gauge(ch, hostDisk, float64(n), host)
		}
		gauge(ch, overDisk, float64(over))
	}
	gauge(ch, upDesc, up)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}
