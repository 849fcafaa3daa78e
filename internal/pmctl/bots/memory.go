package bots

import (
	"github.com/pocketmolt/pocketmolt/internal/bytesize"
	"github.com/pocketmolt/pocketmolt/internal/output"
)

// parseMemory reads a size as bytesize.Parse does: bytes or a number and a binary unit.
func parseMemory(s string) (int64, error) { return bytesize.Parse(s) }

// sizeFlag is a pflag.Value holding a size in bytes (--memory, --disk); zero means unset.
type sizeFlag int64

func (m *sizeFlag) String() string {
	if *m == 0 {
		return ""
	}
	return output.Bytes(uint64(*m))
}

func (m *sizeFlag) Set(s string) error {
	n, err := parseMemory(s)
	if err != nil {
		return err
	}
	*m = sizeFlag(n)
	return nil
}

func (m *sizeFlag) Type() string { return "size" }
