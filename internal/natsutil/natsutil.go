// Package natsutil starts rh's embedded NATS server and connects to NATS the
// same way in every service and client.
package natsutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedOptions configure the embedded server of `rhcli serve`.
type EmbeddedOptions struct {
	// StoreDir holds JetStream's files (a jetstream/ folder is made inside).
	StoreDir string
	// Listen is host:port for clients; port 0 picks a free one.
	Listen string
	// MaxStore and MaxMemory bound JetStream; the server's defaults are most of the machine.
	MaxStore, MaxMemory int64
}

// StartEmbedded starts a NATS server with JetStream and waits until it takes clients.
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("natsutil: listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("natsutil: listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = -1 // nats-server's "random port"
	}
	if o.MaxStore == 0 {
		o.MaxStore = 2 << 30
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = 128 << 20
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "rh-embedded", Host: host, Port: port,
		JetStream: true, StoreDir: o.StoreDir,
		JetStreamMaxStore: o.MaxStore, JetStreamMaxMemory: o.MaxMemory,
		NoLog: true, NoSigs: true, MaxPayload: 8 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("natsutil: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("natsutil: embedded NATS did not start listening on %s (is the port in use?)", o.Listen)
	}
	return ns, nil
}

// ErrUnreachable is matched when no NATS server answers.
var ErrUnreachable = errors.New("no NATS server answers")

// Connect dials NATS with the options every rh process uses: a name, reconnects
// forever, and credentials when given.
func Connect(ctx context.Context, url, name, creds string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(2 * time.Second),
	}
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(dl)))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if errors.Is(err, nats.ErrNoServers) {
			return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, url, err)
		}
		return nil, fmt.Errorf("natsutil: connect %s: %w", url, err)
	}
	return nc, nil
}
