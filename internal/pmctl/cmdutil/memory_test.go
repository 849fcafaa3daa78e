package cmdutil_test

import (
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
)

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"2GiB", 2 << 30, ""},
		{"1536MiB", 1536 << 20, ""},
		{"2G", 2 << 30, ""},
		{"2g", 2 << 30, ""},
		{"2GB", 2 << 30, ""},
		{"2Gi", 2 << 30, ""},
		{"512m", 512 << 20, ""},
		{"64KiB", 64 << 10, ""},
		{"1TiB", 1 << 40, ""},
		{"1.5GiB", 1536 << 20, ""},
		{"2 GiB", 2 << 30, ""},
		{" 2GiB ", 2 << 30, ""},
		{"2147483648", 2147483648, ""},
		{"100b", 100, ""},
		{"", 0, "not a memory size: want bytes or a number with a unit, like 2GiB or 1536MiB"},
		{"GiB", 0, "not a memory size: want bytes or a number with a unit, like 2GiB or 1536MiB"},
		{"lots", 0, "not a memory size: want bytes or a number with a unit, like 2GiB or 1536MiB"},
		{"2XB", 0, "not a memory size: want bytes or a number with a unit, like 2GiB or 1536MiB"},
		{"2GiB5", 0, "not a memory size: want bytes or a number with a unit, like 2GiB or 1536MiB"},
		{"-1GiB", 0, "not a memory size: want bytes or a number with a unit, like 2GiB or 1536MiB"},
		{"1.2.3G", 0, "not a memory size: invalid syntax"},
		{"0", 0, "must be more than zero"},
		{"0GiB", 0, "must be more than zero"},
		{"1.5", 0, "not a whole number of bytes"},
		{"99999999TiB", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := cmdutil.ParseMemory(tt.in)
			var msg string
			if err != nil {
				msg = err.Error()
			}
			if got != tt.want || msg != tt.wantErr {
				t.Errorf("ParseMemory(%q) = %d, %q; want %d, %q", tt.in, got, msg, tt.want, tt.wantErr)
			}
		})
	}
}
