// Package hostfacts reads the facts an agent reports about its machine.
package hostfacts

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// VersionFunc reports the container engine's version, or why it is unavailable.
type VersionFunc func(ctx context.Context) (string, error)

// Collector gathers host facts. DiskPath is the filesystem whose size is reported (the agent's
// state dir); Docker may be nil when no engine is configured.
type Collector struct {
	DiskPath     string
	AgentVersion string
	Docker       VersionFunc
	// Capacity is what the host offers to bots; zero fields are derived from its memory.
	Capacity wire.Capacity
}

// Bots get the host's memory less a reserve for the system, the engine and the agent; each
// takes DefaultBotMemory unless told otherwise.
const (
	reservedMemory   = 1 << 30
	DefaultBotMemory = 2 << 30
)

// DefaultCapacity derives a host's capacity from its memory.
func DefaultCapacity(memory uint64) wire.Capacity {
	m := int64(memory) - reservedMemory
	if m < 0 {
		m = 0
	}
	return wire.Capacity{Bots: int(m / DefaultBotMemory), MemoryBytes: m}
}

// Collect reads the facts now. It never fails: a fact that cannot be read is left zero, and an
// engine that does not answer within 2 s is reported as unavailable with its reason.
func (c Collector) Collect(ctx context.Context) wire.HostFacts {
	f := wire.HostFacts{
		OS:           osName(),
		Arch:         runtime.GOARCH,
		Kernel:       kernel(),
		CPUs:         runtime.NumCPU(),
		MemoryBytes:  memTotal(),
		AgentVersion: c.AgentVersion,
	}
	f.Hostname, _ = os.Hostname()
	f.Capacity = c.Capacity
	def := DefaultCapacity(f.MemoryBytes)
	if f.Capacity.Bots == 0 {
		f.Capacity.Bots = def.Bots
	}
	if f.Capacity.MemoryBytes == 0 {
		f.Capacity.MemoryBytes = def.MemoryBytes
	}
	var st syscall.Statfs_t
	if c.DiskPath != "" && syscall.Statfs(c.DiskPath, &st) == nil {
		f.DiskBytes = st.Blocks * uint64(st.Bsize)
		f.DiskFreeBytes = st.Bavail * uint64(st.Bsize)
	}
	f.DockerVersion = wire.DockerUnavailable
	if c.Docker == nil {
		f.DockerError = "no docker engine configured"
		return f
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	v, err := c.Docker(ctx)
	if err != nil {
		f.DockerError = err.Error()
	} else {
		f.DockerVersion = v
	}
	return f
}

func osName() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func memTotal() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
