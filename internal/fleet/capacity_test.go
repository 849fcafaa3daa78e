package fleet_test

import (
	"encoding/json"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestHostCapacity(t *testing.T) {
	declares := func(bots int, mem int64) []byte {
		b, _ := json.Marshal(wire.HostFacts{Capacity: wire.Capacity{Bots: bots, MemoryBytes: mem}})
		return b
	}
	tests := []struct {
		name    string
		h       store.Host
		usable  wire.Capacity
		source  string
		refused string
	}{
		{"within the enrollment's memory", store.Host{Facts: declares(3, 7<<30), MemoryBytes: 8 << 30},
			wire.Capacity{Bots: 3, MemoryBytes: 7 << 30}, wire.CapacityFromEnrollment, ""},
		{"all of it", store.Host{Facts: declares(8, 8<<30), MemoryBytes: 8 << 30},
			wire.Capacity{Bots: 8, MemoryBytes: 8 << 30}, wire.CapacityFromEnrollment, ""},
		{"1 PiB and 100000 bots", store.Host{Facts: declares(100000, 1<<50), MemoryBytes: 4 << 30},
			wire.Capacity{Bots: 4, MemoryBytes: 4 << 30}, wire.CapacityFromEnrollment,
			"declares 100000 bots, over the limit of 4; declares 1PiB of memory, over the limit of 4GiB"},
		{"more bots only", store.Host{Facts: declares(9, 2<<30), MemoryBytes: 8 << 30},
			wire.Capacity{Bots: 8, MemoryBytes: 2 << 30}, wire.CapacityFromEnrollment, "declares 9 bots, over the limit of 8"},
		{"an operator's limit wins", store.Host{Facts: declares(10, 20<<30), MemoryBytes: 32 << 30, CapacityBots: 5, CapacityMemoryBytes: 16 << 30},
			wire.Capacity{Bots: 5, MemoryBytes: 16 << 30}, wire.CapacityFromOperator,
			"declares 10 bots, over the limit of 5; declares 20GiB of memory, over the limit of 16GiB"},
		{"an operator may allow more than the memory", store.Host{Facts: declares(10, 20<<30), MemoryBytes: 4 << 30, CapacityBots: 10, CapacityMemoryBytes: 20 << 30},
			wire.Capacity{Bots: 10, MemoryBytes: 20 << 30}, wire.CapacityFromOperator, ""},
		{"part operator, part enrollment", store.Host{Facts: declares(6, 6<<30), MemoryBytes: 8 << 30, CapacityBots: 2},
			wire.Capacity{Bots: 2, MemoryBytes: 6 << 30}, wire.CapacityFromOperator, "declares 6 bots, over the limit of 2"},
		{"memory unknown", store.Host{Facts: declares(3, 7<<30)},
			wire.Capacity{}, "", "pmd knows nothing of the host's memory to check it against; set a limit with pmctl hosts set"},
		{"declares nothing", store.Host{MemoryBytes: 8 << 30}, wire.Capacity{}, wire.CapacityFromEnrollment, ""},
		{"never heard from", store.Host{}, wire.Capacity{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fleet.HostCapacity(tt.h)
			if c.Usable != tt.usable || c.Source != tt.source || c.Refused != tt.refused {
				t.Fatalf("HostCapacity = %+v\nwant usable %+v, source %q, refused %q", c, tt.usable, tt.source, tt.refused)
			}
		})
	}
}
