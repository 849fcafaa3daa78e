package cmdutil

import (
	"github.com/pocketmolt/pocketmolt/internal/bytesize"
	"github.com/pocketmolt/pocketmolt/internal/output"
)

// SizeFlag is a pflag.Value holding a size in bytes (--memory, --disk, --capacity-memory),
// read by bytesize.Parse; zero means unset.
type SizeFlag int64

func (m *SizeFlag) String() string {
	if *m == 0 {
		return ""
	}
	return output.Bytes(uint64(*m))
}

// Set implements pflag.Value.
func (m *SizeFlag) Set(s string) error {
	n, err := bytesize.Parse(s)
	if err != nil {
		return err
	}
	*m = SizeFlag(n)
	return nil
}

// Type implements pflag.Value; it names the value in help.
func (m *SizeFlag) Type() string { return "size" }
