// Package output prints command results in the format the user asked for with -o: an aligned
// table with a header on a terminal, tab-separated rows without a header when piped, or the
// result itself as JSON or YAML. Every pmctl command prints through Print.
//
// Results carry text from hosts and bots, so nothing Print writes can drive a terminal: table
// cells are escaped with termsafe, and JSON and YAML write every character a terminal could act
// on as an escape of their own, so the data stays exact.
package output

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/pocketmolt/pocketmolt/internal/termsafe"
)

// Format is an output format. Its pointer is a pflag.Value, so a bad -o value is refused while
// flags are parsed, with a message naming the choices.
type Format string

// The formats.
const (
	Table Format = "table"
	JSON  Format = "json"
	YAML  Format = "yaml"
)

// Formats lists the valid formats, in the order help shows them.
var Formats = []string{string(Table), string(JSON), string(YAML)}

// ParseFormat validates s.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case Table, JSON, YAML:
		return f, nil
	}
	return "", fmt.Errorf("unknown output format %q: want one of %s", s, strings.Join(Formats, ", "))
}

// String implements pflag.Value.
func (f *Format) String() string {
	if *f == "" {
		return string(Table)
	}
	return string(*f)
}

// Set implements pflag.Value.
func (f *Format) Set(s string) error {
	v, err := ParseFormat(s)
	if err != nil {
		return fmt.Errorf("must be one of %s", strings.Join(Formats, ", "))
	}
	*f = v
	return nil
}

// Type implements pflag.Value; it names the value in help ("-o, --output format").
func (f *Format) Type() string { return "format" }

// A Tabular is what table format prints. A nil Header means no header line (key/value lists).
type Tabular interface {
	Header() []string
	Rows() [][]string
}

// Column is one table column over rows of type T.
type Column[T any] struct {
	Header string
	Value  func(T) string
}

// Columns makes a Tabular of rows, one column per cols entry.
func Columns[T any](rows []T, cols ...Column[T]) Tabular {
	return columns[T]{rows: rows, cols: cols}
}

type columns[T any] struct {
	rows []T
	cols []Column[T]
}

func (c columns[T]) Header() []string {
	h := make([]string, len(c.cols))
	for i, col := range c.cols {
		h[i] = col.Header
	}
	return h
}

func (c columns[T]) Rows() [][]string {
	out := make([][]string, len(c.rows))
	for i, r := range c.rows {
		row := make([]string, len(c.cols))
		for j, col := range c.cols {
			row[j] = col.Value(r)
		}
		out[i] = row
	}
	return out
}

// KV is one line of a key/value view.
type KV struct{ Key, Value string }

// KeyValues makes a Tabular of "key:  value" lines with no header.
func KeyValues(kvs ...KV) Tabular { return keyValues(kvs) }

type keyValues []KV

func (keyValues) Header() []string { return nil }

func (k keyValues) Rows() [][]string {
	out := make([][]string, len(k))
	for i, kv := range k {
		out[i] = []string{kv.Key + ":", kv.Value}
	}
	return out
}

// Print writes v to w in format f. For Table it prints t: aligned under a header when tty is
// true, tab-separated without a header otherwise; cells are escaped with termsafe.Line. JSON is
// indented with a trailing newline and is as stable as v's field order; YAML uses v's yaml
// tags. Both write the characters a terminal could act on as escapes (see SafeJSON, SafeYAML).
func Print(w io.Writer, tty bool, f Format, v any, t Tabular) error {
	switch f {
	case JSON:
		b, err := SafeJSON(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case YAML:
		b, err := SafeYAML(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case Table, "":
		if t == nil {
			return fmt.Errorf("no table view for %T", v)
		}
		return printTable(w, tty, t)
	}
	return fmt.Errorf("unknown output format %q", f)
}

func printTable(w io.Writer, tty bool, t Tabular) error {
	rows := t.Rows()
	if !tty {
		var b strings.Builder
		for _, r := range rows {
			for i, cell := range r {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(cleanCell(cell))
			}
			b.WriteByte('\n')
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 2, ' ', 0)
	if h := t.Header(); h != nil && len(rows) > 0 {
		writeRow(tw, h)
	}
	for _, r := range rows {
		writeRow(tw, r)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// An empty last cell leaves padding behind; no line ends in spaces.
	lines := strings.SplitAfter(buf.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(strings.TrimSuffix(l, "\n"), " ")
		if strings.HasSuffix(l, "\n") {
			lines[i] += "\n"
		}
	}
	_, err := io.WriteString(w, strings.Join(lines, ""))
	return err
}

func writeRow(w io.Writer, cells []string) {
	clean := make([]string, len(cells))
	for i, c := range cells {
		clean[i] = cleanCell(c)
	}
	fmt.Fprintln(w, strings.Join(clean, "\t"))
}

// cellSpaces keeps one cell on one line and in one column.
var cellSpaces = strings.NewReplacer("\t", " ", "\n", " ", "\r\n", " ")

// cleanCell keeps one cell on one line and in one column, and escapes anything else a
// terminal could act on.
func cleanCell(s string) string {
	return termsafe.Line(cellSpaces.Replace(s))
}
