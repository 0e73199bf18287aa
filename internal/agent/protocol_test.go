package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rhq/rh/internal/testkit"
)

// rawStream opens a stream id on c without an OPEN, to inject frames.
func rawStream(t *testing.T, c *Client) *stream {
	s := newStream(c.conn, c.nextID.Add(2)-1)
	if err := c.conn.register(s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.conn.forget(s) })
	return s
}

func nextEvent(t *testing.T, s *stream) event {
	t.Helper()
	e, err := s.next(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("waiting for a frame on stream %d: %v", s.id, err)
	}
	return e
}

func mustRun(t *testing.T, c *Client) {
	t.Helper()
	var out bytes.Buffer
	code, err := c.Run(ctxT(t, 10*time.Second), RunRequest{Shell: "echo still alive", Stdout: &out})
	if err != nil || code != 0 || out.String() != "still alive\n" {
		t.Fatalf("run after malformed frames: %d, %v, %q", code, err, out.String())
	}
}

func TestMalformedFramesResetOnlyTheirStream(t *testing.T) {
	c, _ := pipeAgent(t, ServeOptions{})
	cases := []struct {
		name      string
		typ       byte
		payload   []byte
		wantReset string // RESET message substring; "" means a RESULT error
		wantCode  string
	}{
		{"bad OPEN JSON", frameOpen, []byte("{not json"), "malformed OPEN", ""},
		{"unknown op", frameOpen, []byte(`{"op":"format-disk"}`), "", codeUnsupported},
		{"bad run request", frameOpen, []byte(`{"op":"run","argv":"ls"}`), "", codeBadRequest},
		{"run without command", frameOpen, []byte(`{"op":"run"}`), "", codeBadRequest},
	}
	for _, tc := range cases {
		s := rawStream(t, c)
		if err := c.conn.sendCtrl(tc.typ, s.id, tc.payload); err != nil {
			t.Fatal(err)
		}
		e := nextEvent(t, s)
		if tc.wantReset != "" {
			if e.typ != frameReset || !strings.Contains(string(e.data), tc.wantReset) {
				t.Errorf("%s: got %s %q, want RESET %q", tc.name, frameNames[e.typ], e.data, tc.wantReset)
			}
		} else {
			var rerr *RemoteError
			if err := decodeResult("x", e.data, nil); e.typ != frameResult || !errors.As(err, &rerr) || rerr.Code != tc.wantCode {
				t.Errorf("%s: got %s %q, want RESULT with code %s", tc.name, frameNames[e.typ], e.data, tc.wantCode)
			}
		}
		mustRun(t, c)
	}

	// Malformed frames on a live stream: a run waiting on stdin.
	live := []struct {
		name    string
		typ     byte
		payload []byte
	}{
		{"DATA without channel", frameData, nil},
		{"short WINDOW", frameWindow, []byte{0, 1, 2}},
		{"zero WINDOW", frameWindow, []byte{0, 0, 0, 0}},
		{"unknown type", 99, []byte("??")},
		{"RESULT from client", frameResult, []byte("{}")},
		{"window overrun", frameData, append([]byte{chanIn}, make([]byte, maxChunk)...)}, // sent until past the window
	}
	for _, tc := range live {
		s := rawStream(t, c)
		open, _ := json.Marshal(runOpen{Op: "run", Shell: "sleep 100", Stdin: true})
		if err := c.conn.sendCtrl(frameOpen, s.id, open); err != nil {
			t.Fatal(err)
		}
		times := 1
		if strings.Contains(tc.name, "overrun") {
			times = 2*defaultWindow/maxChunk + 4 // the pipe to sleep absorbs some
		}
		for range times {
			if err := c.conn.enqueue(encodeFrame(tc.typ, s.id, tc.payload), false); err != nil {
				t.Fatal(err)
			}
		}
		// The agent resets the stream (and kills the command: RESULT
		// "cancelled" may follow, which the client ignores).
		e := nextEvent(t, s)
		for e.typ == frameData {
			e = nextEvent(t, s)
		}
		if e.typ != frameReset || !strings.Contains(string(e.data), "protocol error") {
			t.Errorf("%s: got %s %q, want RESET with a protocol error", tc.name, frameNames[e.typ], e.data)
		}
		mustRun(t, c)
	}
	testkit.WaitErr(t, 5*time.Second, "reset runs killed", func() error {
		st, err := c.Status(ctxT(t, 5*time.Second))
		if err == nil && len(st.Runs) != 0 {
			err = errors.New("runs still listed")
		}
		return err
	})
}

// TestOversizedFrameClosesConnection: a length beyond the cap means the
// framing cannot be trusted; the agent hangs up instead of allocating.
func TestOversizedFrameClosesConnection(t *testing.T) {
	c, done := pipeAgent(t, ServeOptions{})
	var hdr [headerSize]byte
	binary.BigEndian.PutUint32(hdr[:], MaxPayload+6)
	hdr[4] = frameData
	if err := c.conn.enqueue(hdr[:], false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done.done:
		if !errors.Is(done.err, errFraming) {
			t.Fatalf("Serve = %v, want a framing error", done.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not hang up")
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client Done not closed")
	}
}

// fakePeer writes magic and a HELLO, then returns whatever it reads back.
func fakeHello(h Hello) []byte {
	b, _ := json.Marshal(h)
	return append(append([]byte{}, magic...), encodeFrame(frameHello, 0, b)...)
}

func TestClientRefusesIncompatibleAgent(t *testing.T) {
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	go func() {
		sw.Write(fakeHello(Hello{Role: "agent", AgentVersion: "9.0", Protocol: 99, MinProtocol: 99}))
		io.Copy(io.Discard, sr)
	}()
	_, err := NewClientOptions(ctxT(t, 5*time.Second), &pipeRWC{Reader: cr, r: cr, w: cw}, ClientOptions{Logger: quietLog})
	var ve *VersionError
	if !errors.As(err, &ve) || !errors.Is(err, ErrIncompatible) || errors.Is(err, ErrUpgradeNeeded) {
		t.Fatalf("err = %v, want a VersionError (agent newer)", err)
	}
	if !strings.Contains(err.Error(), "incompatible protocol") || !strings.Contains(err.Error(), "99..99") {
		t.Fatalf("unclear message: %v", err)
	}
	sw.Close()

	// An agent older than the client supports: upgrade needed.
	_, err = negotiate(Hello{Protocol: 3, MinProtocol: 2}, Hello{Role: "agent", Protocol: 1, MinProtocol: 1})
	if !errors.Is(err, ErrUpgradeNeeded) || !strings.Contains(err.Error(), "upgrade") {
		t.Fatalf("old agent: %v", err)
	}
	if v, err := negotiate(Hello{Protocol: 3, MinProtocol: 1}, Hello{Protocol: 2, MinProtocol: 2}); err != nil || v != 2 {
		t.Fatalf("overlap: %d, %v", v, err)
	}
}

func TestAgentRefusesIncompatibleClient(t *testing.T) {
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), sr, sw, ServeOptions{Logger: quietLog})
		sw.Close()
	}()
	go cw.Write(append([]byte("motd noise\n"), fakeHello(Hello{Role: "client", Protocol: 7, MinProtocol: 5})...))
	br := bufio.NewReader(cr)
	if err := skipToMagic(br); err != nil {
		t.Fatal(err)
	}
	if f, err := readFrame(br); err != nil || f.typ != frameHello {
		t.Fatalf("first frame %v, %v", f, err)
	}
	f, err := readFrame(br)
	if err != nil || f.typ != frameReset || f.stream != 0 || !strings.Contains(resetMessage(f.payload), "incompatible protocol") {
		t.Fatalf("second frame %v %q, %v; want RESET on stream 0", f, f.payload, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrIncompatible) {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestJunkBeforeHello: a login shell printing to stdout before the agent
// starts does not break the handshake.
func TestJunkBeforeHello(t *testing.T) {
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	go func() {
		sw.Write([]byte("Welcome to node-7!\nLast login: yesterday\n"))
		Serve(context.Background(), sr, sw, ServeOptions{Logger: quietLog})
		sw.Close()
	}()
	c, err := NewClientOptions(ctxT(t, 5*time.Second), &pipeRWC{Reader: cr, r: cr, w: cw}, ClientOptions{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}
