package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"
)

// FuzzFrameDecoder: arbitrary bytes never panic the frame reader, and
// whatever it accepts re-encodes to the bytes it consumed.
func FuzzFrameDecoder(f *testing.F) {
	f.Add(encodeFrame(frameOpen, 1, []byte(`{"op":"ping"}`)))
	f.Add(encodeFrame(frameData, 3, []byte{1}, []byte("hello")))
	f.Add([]byte{0, 0, 0, 4, 1, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0, 1})
	f.Add(append(append([]byte("junk"), magic...), encodeFrame(frameHello, 0, []byte("{}"))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			before := r.Len()
			fr, err := readFrame(r)
			if err != nil {
				break
			}
			consumed := data[len(data)-before : len(data)-r.Len()]
			if !bytes.Equal(encodeFrame(fr.typ, fr.stream, fr.payload), consumed) {
				t.Fatalf("frame %v does not re-encode to its bytes", fr)
			}
		}
		br := bufio.NewReader(bytes.NewReader(data))
		if skipToMagic(br) == nil {
			for {
				if _, err := readFrame(br); err != nil {
					break
				}
			}
		}
	})
}

// fuzzFrames turns fuzz input into well-formed frames (so the dispatcher,
// not just the framing, is exercised): each frame is type, stream id,
// payload length, payload. A trailing remainder is sent raw.
func fuzzFrames(data []byte) []byte {
	var out []byte
	for len(data) >= 3 {
		typ, id, n := data[0], uint32(data[1]%8), int(data[2])
		data = data[3:]
		n = min(n, len(data))
		out = append(out, encodeFrame(typ, id, data[:n])...)
		data = data[n:]
	}
	return append(out, data...)
}

// FuzzServe feeds random frames to a real server after a valid handshake
// and checks that it neither panics nor hangs: once its input closes it
// must return promptly.
func FuzzServe(f *testing.F) {
	seed := func(frames ...[]byte) []byte {
		var b []byte
		for _, fr := range frames {
			// In fuzzFrames' format: type, id, len, payload.
			typ, id, p := fr[4], fr[8], fr[9:]
			b = append(b, typ, id, byte(len(p)))
			b = append(b, p...)
		}
		return b
	}
	f.Add(seed(encodeFrame(frameOpen, 1, []byte(`{"op":"ping"}`))))
	f.Add(seed(encodeFrame(frameOpen, 1, []byte(`{"op":"run","shell":"x"}`)), encodeFrame(frameData, 1, []byte{0, 'a'})))
	f.Add(seed(encodeFrame(frameOpen, 2, []byte(`{"op":"ping"`)), encodeFrame(frameReset, 2, []byte(`{"error":"x"}`))))
	f.Add(seed(encodeFrame(frameOpen, 3, []byte(`{}`)), encodeFrame(frameWindow, 3, []byte{0, 0, 0, 1}), encodeFrame(frameEOF, 3, nil)))
	f.Add(seed(encodeFrame(frameOpen, 1, []byte(`{"op":"ping"}`)), encodeFrame(frameOpen, 1, []byte(`{"op":"ping"}`)), encodeFrame(frameReset, 0, nil)))
	f.Add([]byte{9, 9, 9, 0xff, 0xff, 0xff, 0xff})
	hello, _ := json.Marshal(localHello("client"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sr, cw := io.Pipe()
		cr, sw := io.Pipe()
		go io.Copy(io.Discard, cr)
		done := make(chan error, 1)
		go func() {
			// Only ping: random input must not run commands or touch files.
			done <- Serve(context.Background(), sr, sw, ServeOptions{Logger: quietLog, ShutdownGrace: 2 * time.Second,
				allowOp: func(op string) bool { return op == "ping" }})
			sw.Close()
		}()
		in := append(append(append([]byte{}, magic...), encodeFrame(frameHello, 0, hello)...), fuzzFrames(data)...)
		go func() {
			cw.Write(in)
			cw.Close()
		}()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, errFraming) {
				t.Fatalf("Serve = %v", err)
			}
		case <-time.After(fuzzHang):
			t.Fatal("Serve hung after its input closed")
		}
	})
}

var fuzzHang = 5 * time.Second
