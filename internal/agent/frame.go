package agent

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Protocol versions. A peer speaks every version in [MinProtocolVersion,
// ProtocolVersion]; two peers are compatible when their ranges overlap and
// then speak the highest common version.
//
// Version 2 added fs.writefiles (batches of small files) and run's "login"
// form; the gateway always places the agent of its own build, so it no
// longer speaks 1: a version-1 agent is refused as ErrUpgradeNeeded.
const (
	ProtocolVersion    = 2
	MinProtocolVersion = 2
)

// MaxPayload caps the payload of one frame. Larger frames are refused: the
// length field is the only thing keeping a corrupt stream from making either
// side allocate gigabytes.
const MaxPayload = 1 << 20

const (
	headerSize = 4 + 1 + 4 // length, type, stream id
	// maxChunk is the largest DATA payload a sender produces, well under
	// MaxPayload so streams interleave finely on the shared connection.
	maxChunk = 64 << 10
	// defaultWindow is each stream's initial credit per direction: how many
	// bytes (plus per-frame overhead) may be in flight unconsumed.
	defaultWindow = 1 << 20
	// dataOverhead is charged against the window for every DATA frame on top
	// of its length, so a flood of tiny frames is bounded as well as bytes.
	dataOverhead = 16
	// maxJunk is how much non-protocol output (a chatty shell rc file) the
	// reader skips while looking for the peer's magic.
	maxJunk = 64 << 10
)

// magic precedes the first frame in each direction. It lets a reader skip
// junk that a login shell printed before exec'ing the agent.
var magic = []byte("\x00\xffRHAGENT\n")

// Frame types.
const (
	frameHello  byte = 1 // stream 0, JSON hello
	frameOpen   byte = 2 // client→agent: JSON request, opens the stream
	frameData   byte = 3 // 1 channel byte + raw bytes
	frameWindow byte = 4 // 4-byte big-endian credit increment
	frameEOF    byte = 5 // sender half-close; optional JSON
	frameReply  byte = 6 // agent→client intermediate JSON (e.g. "opened")
	frameResult byte = 7 // agent→client final JSON; ends the stream
	frameReset  byte = 8 // either way: abort the stream; JSON {"error":...}
)

// Channels of DATA frames.
const (
	chanIn     byte = 0 // stdin, file content, result bodies
	chanStdout byte = 1
	chanStderr byte = 2
)

var frameNames = map[byte]string{
	frameHello: "HELLO", frameOpen: "OPEN", frameData: "DATA", frameWindow: "WINDOW",
	frameEOF: "EOF", frameReply: "REPLY", frameResult: "RESULT", frameReset: "RESET",
}

// frame is one decoded frame. Payload is owned by the frame.
type frame struct {
	typ     byte
	stream  uint32
	payload []byte
}

func (f frame) String() string {
	name := frameNames[f.typ]
	if name == "" {
		name = fmt.Sprintf("type%d", f.typ)
	}
	return fmt.Sprintf("%s stream=%d len=%d", name, f.stream, len(f.payload))
}

// errFraming means the byte stream can no longer be parsed: the connection
// must be closed.
var errFraming = errors.New("agent: framing lost")

// encodeFrame returns a frame ready to write in one call.
func encodeFrame(typ byte, stream uint32, payload ...[]byte) []byte {
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	b := make([]byte, headerSize, headerSize+n)
	binary.BigEndian.PutUint32(b[0:4], uint32(5+n))
	b[4] = typ
	binary.BigEndian.PutUint32(b[5:9], stream)
	for _, p := range payload {
		b = append(b, p...)
	}
	return b
}

// readFrame reads one frame. Any error it returns means the stream is
// unusable (EOF included); payload problems are for the caller to judge.
func readFrame(r io.Reader) (frame, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return frame{}, fmt.Errorf("%w: truncated frame header", errFraming)
		}
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	if n < 5 {
		return frame{}, fmt.Errorf("%w: frame length %d below the 5-byte minimum", errFraming, n)
	}
	if n-5 > MaxPayload {
		return frame{}, fmt.Errorf("%w: frame payload of %d bytes exceeds the %d-byte limit", errFraming, n-5, MaxPayload)
	}
	f := frame{typ: h[4], stream: binary.BigEndian.Uint32(h[5:9]), payload: make([]byte, n-5)}
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, fmt.Errorf("%w: truncated frame payload: %w", errFraming, err)
	}
	return f, nil
}

// skipToMagic discards bytes up to and including magic, refusing to look
// further than maxJunk.
func skipToMagic(r *bufio.Reader) error {
	var seen []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			if len(seen) > 0 && !errors.Is(err, io.EOF) {
				return err
			}
			if len(seen) > 0 {
				return fmt.Errorf("agent: peer sent %q and closed before the protocol started", trimJunk(seen))
			}
			return err
		}
		seen = append(seen, b)
		if bytes.HasSuffix(seen, magic) {
			return nil
		}
		if len(seen) > maxJunk {
			return fmt.Errorf("%w: no protocol magic in the first %d bytes (starts with %q)", errFraming, maxJunk, trimJunk(seen))
		}
	}
}

func trimJunk(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(bytes.TrimSpace(b))
}
