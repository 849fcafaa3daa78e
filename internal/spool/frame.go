package spool

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// The segment format. A segment is a sequence of frames and nothing else:
//
//	magic   4 bytes  0xFF 'P' 'M' 'U'
//	length  4 bytes  little-endian length of the payload, 1..maxPayload
//	crc     4 bytes  little-endian CRC-32C (Castagnoli) of the length bytes and the payload
//	payload length bytes of JSON (a wire.UsageRecord)
//
// The magic lets a reader find the next frame after a damaged one: 0xFF never occurs in
// JSON (valid UTF-8), so the magic cannot appear inside a good frame's payload, and a
// candidate is only taken when its length and checksum hold. The checksum covers the
// length, so a flipped length bit is caught rather than followed.

const (
	headerLen  = 12
	maxPayload = 64 << 10 // a usage record is a few hundred bytes
)

var (
	frameMagic = []byte{0xFF, 'P', 'M', 'U'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// appendFrame appends payload, framed, to dst.
func appendFrame(dst, payload []byte) []byte {
	var h [headerLen]byte
	copy(h[0:4], frameMagic)
	binary.LittleEndian.PutUint32(h[4:8], uint32(len(payload)))
	crc := crc32.Update(0, castagnoli, h[4:8])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[8:12], crc)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// frameAt returns the payload of a good frame starting at buf[0] and the frame's whole
// length, or ok false when there is no good frame there (damaged or incomplete).
func frameAt(buf []byte) (payload []byte, n int, ok bool) {
	if len(buf) < headerLen || !bytes.Equal(buf[0:4], frameMagic) {
		return nil, 0, false
	}
	size := binary.LittleEndian.Uint32(buf[4:8])
	if size == 0 || size > maxPayload || uint64(len(buf)-headerLen) < uint64(size) {
		return nil, 0, false
	}
	payload = buf[headerLen : headerLen+int(size)]
	crc := crc32.Update(0, castagnoli, buf[4:8])
	crc = crc32.Update(crc, castagnoli, payload)
	if crc != binary.LittleEndian.Uint32(buf[8:12]) {
		return nil, 0, false
	}
	return payload, headerLen + int(size), true
}

// region is a run of bytes in a segment that holds no good frame.
type region struct {
	off, n int64
}

// scan walks the frames of buf, which starts at offset base of its segment, calling fn with
// each good frame's offset, end and payload in order until fn returns false. Bytes that do
// not frame are skipped up to the next good frame and reported as damaged regions; damage
// with no good frame after it is the tail. scan returns the offset just past the last frame
// it handed to fn (base when none), the damaged regions before that, and the damaged tail
// (n == 0 when there is none; when fn stopped early the tail is not looked for).
func scan(buf []byte, base int64, fn func(off, end int64, payload []byte) bool) (end int64, skipped []region, tail region) {
	pos := 0
	end = base
	for pos < len(buf) {
		payload, n, ok := frameAt(buf[pos:])
		if !ok {
			next := resync(buf, pos+1)
			if next < 0 {
				return end, skipped, region{off: base + int64(pos), n: int64(len(buf) - pos)}
			}
			skipped = append(skipped, region{off: base + int64(pos), n: int64(next - pos)})
			pos = next
			continue
		}
		off := base + int64(pos)
		pos += n
		end = base + int64(pos)
		if !fn(off, end, payload) {
			return end, skipped, region{}
		}
	}
	return end, skipped, region{}
}

// resync returns the offset of the first good frame in buf at or after from, or -1.
func resync(buf []byte, from int) int {
	for from < len(buf) {
		i := bytes.Index(buf[from:], frameMagic)
		if i < 0 {
			return -1
		}
		if _, _, ok := frameAt(buf[from+i:]); ok {
			return from + i
		}
		from += i + 1
	}
	return -1
}
