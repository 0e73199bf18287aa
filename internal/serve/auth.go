package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/natsembed"
)

// ErrNoAccounts refuses a NATS that lets anyone in: rh would hand every
// cluster's keys to whoever connects.
var ErrNoAccounts = errors.New("serve: this NATS does not require authentication, so it cannot tell rh's callers apart")

// authenticate decides how the services learn who calls them. The embedded
// server and a NATS set up with `rhcli nats-config` stamp each request with
// its caller, whom the users directory (KV rh_users) names; a NATS without
// accounts is refused unless --insecure-nats, which treats every caller as
// the operator and says so loudly. For the embedded server, every change to
// the directory also reloads the server's users, so a removed user is
// disconnected at once.
func authenticate(ctx context.Context, nc *nats.Conn, ns *natsembed.Server, m *auth.Material, services []string, o Options, log *slog.Logger) (*auth.Authenticator, error) {
	if ns == nil && !nc.AuthRequired() {
		if !o.InsecureNATS {
			return nil, fmt.Errorf("%w: set it up with `rhcli nats-config --dir DIR` and give serve --creds, or pass --insecure-nats to run without authentication (every caller is then the operator)", ErrNoAccounts)
		}
		log.Warn("INSECURE: NATS without rh's accounts (--insecure-nats): anyone who can reach it can read every cluster's keys and act as the operator")
		return auth.Insecure(), nil
	}
	if ns == nil && o.InsecureNATS {
		log.Warn("--insecure-nats given, but this NATS requires authentication: callers are authenticated")
	}
	needs := ns != nil || slices.ContainsFunc(services, func(s string) bool { return s == "registry" || s == "sshgateway" })
	if !needs {
		// Workers answer only check, which every caller NATS let in may ask.
		return auth.Insecure(), nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kv, err := events.UsersBucket(sctx, js)
	if err != nil {
		return nil, fmt.Errorf("serve: users directory (is the registry set up on this NATS?): %w", err)
	}
	var boot []rh.User
	if m != nil {
		boot = append(boot, m.Operator)
	}
	if o.UsersFile != "" && slices.Contains(services, "registry") {
		more, err := readUsersFile(o.UsersFile)
		if err != nil {
			return nil, err
		}
		boot = append(boot, more...)
	}
	for _, u := range boot {
		if err := ensureUser(sctx, kv, u); err != nil {
			return nil, err
		}
	}
	var onChange func([]rh.User)
	if ns != nil {
		onChange = func(users []rh.User) {
			if err := ns.SetUsers(users); err != nil {
				log.Error("reload NATS users", "err", err)
				return
			}
			log.Debug("NATS users reloaded", "users", len(users))
		}
	}
	dir, err := auth.WatchDirectory(sctx, kv, onChange)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	context.AfterFunc(ctx, dir.Stop)
	return auth.NewAuthenticator(dir), nil
}

// readUsersFile reads and checks a bootstrap users file.
func readUsersFile(path string) ([]rh.User, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("serve: --users: %w", err)
	}
	var users []rh.User
	if err := json.Unmarshal(b, &users); err != nil {
		return nil, rh.Invalid("--users", "%s is not a JSON list of users: %v", path, err)
	}
	for i, u := range users {
		field := fmt.Sprintf("--users[%d]", i)
		if err := rh.ValidateUserName(field+".name", u.Name); err != nil {
			return nil, err
		}
		if !u.Role.Valid() {
			return nil, rh.Invalid(field+".role", "%q is not one of admin, member, viewer", u.Role)
		}
		if _, err := nkeys.FromPublicKey(u.Key); err != nil || !strings.HasPrefix(u.Key, "U") {
			return nil, rh.Invalid(field+".key", "is not a user nkey (public, starting with U)")
		}
	}
	return users, nil
}

// ensureUser records the local operator in the directory, replacing a
// record whose key no longer matches the credentials file.
func ensureUser(ctx context.Context, kv jetstream.KeyValue, u rh.User) error {
	e, err := kv.Get(ctx, auth.UserKey(u.Name))
	if err == nil {
		var cur rh.User
		if json.Unmarshal(e.Value(), &cur) == nil && cur.Key == u.Key && cur.Role == u.Role {
			return nil
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("serve: read user %s: %w", u.Name, err)
	}
	u.CreatedAt = time.Now().UTC().Format(time.RFC3339)
	b, _ := json.Marshal(u)
	if _, err := kv.Put(ctx, auth.UserKey(u.Name), b); err != nil {
		return fmt.Errorf("serve: record user %s: %w", u.Name, err)
	}
	return nil
}
