package bytesize

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const notASize = "not a size: want bytes or a number with a unit, like 2GiB or 1536MiB"
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
		{"", 0, notASize},
		{"GiB", 0, notASize},
		{"lots", 0, notASize},
		{"2XB", 0, notASize},
		{"2GiB5", 0, notASize},
		{"-1GiB", 0, notASize},
		{"1.2.3G", 0, "not a size: invalid syntax"},
		{"0", 0, "must be more than zero"},
		{"0GiB", 0, "must be more than zero"},
		{"1.5", 0, "not a whole number of bytes"},
		{"99999999TiB", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			var msg string
			if err != nil {
				msg = err.Error()
			}
			if got != tt.want || msg != tt.wantErr {
				t.Errorf("Parse(%q) = %d, %q; want %d, %q", tt.in, got, msg, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0B", 100: "100B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB", 10 << 30: "10GiB",
		1536 << 20: "1.5GiB", 1<<20 + 300<<10: "1.3MiB", 1<<30 + 1: "1.0GiB", -2048: "-2KiB",
	} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzParse: any input either fails or gives a positive size, which Format writes back
// exactly (Parse reads it as the same size) or to a tenth of its unit.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"2GiB", "1536MiB", "1.5 G", "100", "0", "-1", "1e9", "NaN", "Inf GiB", "99999999TiB", "\x00", "１GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			return
		}
		if n <= 0 {
			t.Fatalf("Parse(%q) = %d", s, n)
		}
		text := Format(n)
		if strings.Contains(text, ".") {
			return
		}
		if back, err := Parse(text); err != nil || back != n {
			t.Fatalf("Parse(Format(%d) = %q) = %d, %v", n, text, back, err)
		}
	})
}
