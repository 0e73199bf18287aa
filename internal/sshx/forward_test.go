package sshx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/internal/sshx"
	"github.com/rhq/rh/internal/testkit"
)

// A forward carries connections to the node's own port; when the node
// comes back with another host key, it gives up with ErrHostKeyChanged
// rather than redialling forever or trusting the new key.
func TestForwardEndsWhenTheHostKeyChanges(t *testing.T) {
	t.Parallel()
	n, tg := keyNode(t, sshnode.KeyEd25519, sshnode.Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	remote := net.JoinHostPort("localhost", strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var kinds []sshx.ForwardEventKind
	fw, err := sshx.Forward(context.Background(), newDialer(), tg, ln, remote, sshx.ForwardOptions{
		MinBackoff: 10 * time.Millisecond,
		OnEvent: func(e sshx.ForwardEvent) {
			mu.Lock()
			defer mu.Unlock()
			kinds = append(kinds, e.Kind)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://" + fw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("GET through the forward = %q", b)
	}

	if err := n.RotateHostKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fw.Done():
	case <-time.After(time.Minute):
		t.Fatal("the forward did not end after the host key changed")
	}
	if err := fw.Err(); !errors.Is(err, sshx.ErrHostKeyChanged) {
		t.Fatalf("Err = %v, want ErrHostKeyChanged", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(kinds) == 0 || kinds[0] != sshx.ForwardLost {
		t.Fatalf("events %v: want lost first", kinds)
	}
	if testkit.ListensHere(t, fw.Addr().String()) {
		t.Fatal("the local port still listens after the forward ended")
	}
}
