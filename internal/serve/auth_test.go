package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/natstest"
	"github.com/rhq/rh/internal/natsutil"
	"github.com/rhq/rh/internal/serve"
	"github.com/rhq/rh/internal/testkit"
)

func TestEmbeddedServeRefusesAnonymousClientsAndKeepsItsKeysPrivate(t *testing.T) {
	dir := t.TempDir()
	r := startServe(t, serve.Options{DataDir: dir, Services: []string{"registry"}})

	if _, err := natsutil.Connect(context.Background(), r.url, "anon", ""); !errors.Is(err, natsutil.ErrAuthorization) {
		t.Fatalf("anonymous connect to the embedded default: %v, want refused", err)
	}
	if want := filepath.Join(dir, "auth", auth.OperatorCredsFile); r.creds != want {
		t.Fatalf("ready gave creds %q, want %q", r.creds, want)
	}
	authDir := filepath.Join(dir, "auth")
	st, err := os.Stat(authDir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("auth dir mode: %v %v", st.Mode(), err)
	}
	err = filepath.WalkDir(authDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The operator's file works, and a create is attributed to it.
	cl := connect(t, r)
	if _, err := cl.Create(context.Background(), "mine", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge"}}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestJetStreamIsEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	r := startServe(t, serve.Options{DataDir: dir, Services: []string{"registry"}})
	cl := connect(t, r)
	const probe = "plaintextprobe"
	if _, err := cl.Create(context.Background(), probe, rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge", Provider: "aws", Region: "us-west-probe"}}, nil); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	r.stop(t)
	found := 0
	err := filepath.WalkDir(filepath.Join(dir, "jetstream"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found++
		if bytes.Contains(b, []byte("us-west-probe")) {
			t.Errorf("%s holds the record in clear text", p)
		}
		return nil
	})
	if err != nil || found == 0 {
		t.Fatalf("walked %d store files: %v", found, err)
	}
}

func TestListeningBeyondLoopbackNeedsTLS(t *testing.T) {
	err := serve.Run(context.Background(), serve.Options{DataDir: t.TempDir(), Listen: "0.0.0.0:0", Services: []string{"registry"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, natsutil.ErrPlaintextBeyondLoopback) || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("serve on 0.0.0.0 without TLS: %v", err)
	}
}

func TestServeRefusesANATSWithoutAccountsUnlessInsecure(t *testing.T) {
	bare := natstest.Start(t)
	err := serve.Run(context.Background(), serve.Options{NATSURL: bare.URL, Services: []string{"registry"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, serve.ErrNoAccounts) || !strings.Contains(err.Error(), "--insecure-nats") {
		t.Fatalf("serve --nats on a NATS without accounts: %v", err)
	}

	addr := freeAddr(t)
	startServe(t, serve.Options{NATSURL: bare.URL, InsecureNATS: true, HTTPAddr: addr, Services: []string{"registry"}})
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "INSECURE") {
		t.Fatalf("/readyz under --insecure-nats: %d %q, want a loud INSECURE", resp.StatusCode, body)
	}
}

func TestRemovingAUserCutsItOffTheRunningServer(t *testing.T) {
	dir := t.TempDir()
	r := startServe(t, serve.Options{DataDir: dir, Services: []string{"registry"}})
	m, err := auth.EnsureMaterial(filepath.Join(dir, "auth"), "")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := natsutil.Connect(context.Background(), r.url, "test-service", m.ServiceCreds(auth.SvcServe))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	js, _ := jetstream.New(svc)
	kv, err := events.UsersBucket(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	pub, seed, _ := auth.NewUserKey()
	creds := filepath.Join(t.TempDir(), "carol.creds")
	if err := auth.WriteCredsFile(creds, auth.CredsText("carol", seed)); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rh.User{Name: "carol", Role: rh.RoleMember, Key: pub})
	if _, err := kv.Put(context.Background(), auth.UserKey("carol"), b); err != nil {
		t.Fatal(err)
	}
	// The server learns of carol from the directory.
	var carol *nats.Conn
	testkit.Eventually(t, 30*time.Second, "a user added to rh_users to connect", func() bool {
		carol, err = natsutil.Connect(context.Background(), r.url, "carol", creds, nats.MaxReconnects(0))
		return err == nil
	})
	defer carol.Close()

	if err := kv.Delete(context.Background(), auth.UserKey("carol")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "a removed user to be disconnected", func() bool { return carol.IsClosed() || !carol.IsConnected() })
	if _, err := natsutil.Connect(context.Background(), r.url, "carol", creds); !errors.Is(err, natsutil.ErrAuthorization) {
		t.Fatalf("removed user reconnecting: %v", err)
	}
}
