package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/rhq/rh/client"
)

// tunnelPayload is the size of the download the throughput cases time.
const tunnelPayload = 64 << 20

// BenchmarkTunnel: an HTTP server on the node (on loopback: the nodes are
// this machine) reached through rh's tunnel (client.Tunnel, in-process
// direct-tcpip) and through `ssh -N -L` (OpenSSH, its own connection).
// request is one small GET on a new TCP connection (what a browser or a
// client library opening connections pays); 64MiB one download of 64 MiB.
func BenchmarkTunnel(b *testing.B) {
	e := shared(b)
	payload := bytes.Repeat([]byte("0123456789abcdef"), tunnelPayload/16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, _ = w.Write(payload)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	remote := srv.Listener.Addr().(*net.TCPAddr).Port

	s := e.stacks[0]
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	tun, err := s.cl.Tunnel(ctx, soloCluster, remote, client.TunnelOptions{LocalAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	sshURL, stop, err := e.sshForward(ctx, remote)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()

	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(url string, want int) error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n != int64(want) {
			err = fmt.Errorf("got %d bytes, want %d", n, want)
		}
		return err
	}
	for _, c := range []struct{ name, url string }{{"rhcli-sdk", tun.URL()}, {"ssh-L", sshURL}} {
		b.Run("request/"+c.name, func(b *testing.B) {
			measure(b, bcase{run: func(context.Context) (transfer, error) { return noTransfer(get(c.url+"/", 2)) }})
		})
		b.Run("64MiB/"+c.name, func(b *testing.B) {
			measure(b, bcase{run: func(context.Context) (transfer, error) { return noTransfer(get(c.url+"/big", tunnelPayload)) }})
		})
	}
}

// sshForward runs `ssh -N -L` to node 0 (a new connection, no ControlMaster)
// and returns its local URL once it carries a request.
func (e *env) sshForward(ctx context.Context, remote int) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	local := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.CommandContext(ctx, "ssh", "-F", e.sshConfig, "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:localhost:%d", local, remote), e.nodes[0].Addr())
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	url := "http://127.0.0.1:" + strconv.Itoa(local)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return url, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("ssh -L never carried a request: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
