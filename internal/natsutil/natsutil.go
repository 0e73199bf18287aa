// Package natsutil connects to NATS the same way in every service and client.
package natsutil

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rhq/rh/internal/auth"
)

// ErrUnreachable is matched when no NATS server answers.
var ErrUnreachable = errors.New("no NATS server answers")

// ErrAuthorization is matched when the server refuses the credentials.
var ErrAuthorization = errors.New("NATS refused the credentials")

// ConnectTimeout bounds one connection attempt when the context gives no
// deadline. Slow is not dead: a loaded machine or a busy server can take
// seconds to finish the handshake (nats.go's default is 2 s), while a
// refused or unreachable address fails at once anyway.
const ConnectTimeout = 10 * time.Second

// Connect dials NATS with the options every rh process uses: a name, reconnects
// forever, and credentials when given (an rh credentials file or a NATS .creds).
func Connect(ctx context.Context, url, name, creds string, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(ConnectTimeout),
	}
	if creds != "" {
		co, err := auth.ConnectOptions(creds)
		if err != nil {
			return nil, fmt.Errorf("natsutil: %w", err)
		}
		opts = append(opts, co...)
	}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(dl)))
	}
	opts = append(opts, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		if errors.Is(err, nats.ErrNoServers) {
			return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, url, err)
		}
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization") {
			return nil, fmt.Errorf("%w at %s (give --creds FILE or RH_NATS_CREDS): %w", ErrAuthorization, url, err)
		}
		return nil, fmt.Errorf("natsutil: connect %s: %w", url, err)
	}
	return nc, nil
}
