package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Bounds on what one server-sent event from a provider may hold, so a hostile or broken
// upstream cannot grow the stand-in's memory without limit.
const (
	maxSSELine  = 1 << 20
	maxSSEEvent = 4 << 20
)

// errSSETooLong is a line or an event over the bounds above.
var errSSETooLong = errors.New("server-sent event too long")

// serverEvent is one event of a text/event-stream: its name ("" when the stream gives none) and
// its data lines joined by "\n".
type serverEvent struct {
	name string
	data string
}

// sseReader reads server-sent events as the WHATWG spec parses them: lines end in LF, CRLF or
// CR; "field: value" with one optional space; ":" starts a comment; a blank line dispatches
// the event when it has data. It is not safe for concurrent use.
type sseReader struct {
	r       *bufio.Reader
	pending bool // the previous line ended in CR: a following LF belongs to it
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReaderSize(r, 4096)} }

// line reads one line without its ending. At the end of input it returns the unterminated
// rest with io.EOF (or io.EOF alone when nothing is left).
func (s *sseReader) line() ([]byte, error) {
	var buf []byte
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				return buf, io.EOF
			}
			return nil, err
		}
		if s.pending {
			s.pending = false
			if c == '\n' {
				continue
			}
		}
		switch c {
		case '\n':
			return buf, nil
		case '\r':
			s.pending = true
			return buf, nil
		}
		if len(buf) >= maxSSELine {
			return nil, errSSETooLong
		}
		buf = append(buf, c)
	}
}

// next returns the next event. It returns io.EOF at the end of the stream when no event is
// half read, io.ErrUnexpectedEOF when the stream ends inside an event (which is dropped, as
// the spec says), and errSSETooLong or the reader's error otherwise.
func (s *sseReader) next() (serverEvent, error) {
	var ev serverEvent
	var data []byte
	hasData, started := false, false
	for {
		line, err := s.line()
		if err != nil && !errors.Is(err, io.EOF) {
			return serverEvent{}, err
		}
		if errors.Is(err, io.EOF) {
			if started || len(line) > 0 {
				return serverEvent{}, io.ErrUnexpectedEOF
			}
			return serverEvent{}, io.EOF
		}
		if len(line) == 0 {
			if hasData {
				ev.data = string(data)
				return ev, nil
			}
			ev, data, started = serverEvent{}, data[:0], false
			continue
		}
		started = true
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.name = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			if len(data)+len(value) > maxSSEEvent {
				return serverEvent{}, fmt.Errorf("%w: over %d bytes of data", errSSETooLong, maxSSEEvent)
			}
			data = append(data, value...)
			hasData = true
		}
	}
}
