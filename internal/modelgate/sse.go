package modelgate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// errEventTooLarge is a stream event longer than the reader's bound.
var errEventTooLarge = errors.New("stream event too large")

// sseReader splits a server-sent event stream into events, each with its bytes exactly as
// they came (so that they pass through unchanged) and its data lines joined with "\n".
// Lines end in "\n" or "\r\n"; an event ends at an empty line.
type sseReader struct {
	br  *bufio.Reader
	max int
	raw []byte
	dat []byte
}

func newSSEReader(r io.Reader, maxEvent int) *sseReader {
	return &sseReader{br: bufio.NewReaderSize(r, 32<<10), max: maxEvent}
}

// next returns the next event's raw bytes and data (valid until the next call). At the end
// of the stream it returns io.EOF, with the raw bytes of an unfinished last event if any
// (whose data is not returned: an event without its empty line is not whole). Any other
// error is the stream's.
func (s *sseReader) next() (raw, data []byte, err error) {
	s.raw, s.dat = s.raw[:0], s.dat[:0]
	hasData := false
	for {
		line, err := s.br.ReadSlice('\n')
		if len(s.raw)+len(line) > s.max {
			return s.raw, nil, fmt.Errorf("read stream: %w", errEventTooLarge)
		}
		s.raw = append(s.raw, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: keep reading it; only its bytes are kept so far.
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = s.br.ReadSlice('\n')
				if len(s.raw)+len(line) > s.max {
					return s.raw, nil, fmt.Errorf("read stream: %w", errEventTooLarge)
				}
				s.raw = append(s.raw, line...)
			}
			line = s.raw[lineStart(s.raw):]
		}
		if err != nil {
			if err == io.EOF {
				return s.raw, nil, io.EOF
			}
			return s.raw, nil, fmt.Errorf("read stream: %w", err)
		}
		text := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(text) == 0 {
			if len(s.raw) == len(line) {
				// Empty lines between events: pass them along on their own.
				return s.raw, nil, nil
			}
			if !hasData {
				return s.raw, nil, nil
			}
			return s.raw, s.dat, nil
		}
		if v, ok := field(text, "data"); ok {
			if hasData {
				s.dat = append(s.dat, '\n')
			}
			s.dat = append(s.dat, v...)
			hasData = true
		}
	}
}

// buffered is how many bytes are read from the stream and not yet returned.
func (s *sseReader) buffered() int { return s.br.Buffered() }

// lineStart is where the last line of b (which ends b) starts.
func lineStart(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
}

// field returns the value of line when it is the named field ("data: x" or "data:x").
func field(line []byte, name string) ([]byte, bool) {
	if len(line) < len(name) || string(line[:len(name)]) != name {
		return nil, false
	}
	rest := line[len(name):]
	if len(rest) == 0 {
		return rest, true
	}
	if rest[0] != ':' {
		return nil, false
	}
	rest = rest[1:]
	if len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	return rest, true
}
