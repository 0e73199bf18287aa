package serve_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/events"
	"github.com/rhq/rh/internal/auth"
	"github.com/rhq/rh/internal/natsembed"
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
	if !errors.Is(err, natsembed.ErrPlaintextBeyondLoopback) || !strings.Contains(err.Error(), "--tls-cert") {
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

// selfSigned writes a certificate for 127.0.0.1 and its key, returning their
// paths and a pool that trusts it.
func selfSigned(t *testing.T) (cert, key string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rh test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	kb, _ := x509.MarshalECPrivateKey(priv)
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return cert, key, pool
}

func TestTLSServesClientsAndPlaintextIsRefused(t *testing.T) {
	cert, key, pool := selfSigned(t)
	r := startServe(t, serve.Options{DataDir: t.TempDir(), Services: []string{"registry"}, TLSCert: cert, TLSKey: key})
	co, err := auth.ConnectOptions(r.creds)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(r.url, append(co, nats.Timeout(natstest.ConnectTimeout), nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))...)
	if err != nil {
		t.Fatalf("TLS client with the operator's credentials: %v", err)
	}
	nc.Close()
	if _, err := nats.Connect(r.url, co...); err == nil {
		t.Fatal("a client that does not trust the certificate connected")
	}
	// The SDK (and rhcli) trust a private CA given as a file.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, mustRead(t, cert), 0o600); err != nil {
		t.Fatal(err)
	}
	cl, err := client.Connect(context.Background(), client.Options{URL: r.url, Creds: r.creds, TLSCA: caFile})
	if err != nil {
		t.Fatalf("SDK over TLS with --tls-ca: %v", err)
	}
	defer cl.Close()
	if _, err := cl.List(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckShowsEveryStreamsReplicas(t *testing.T) {
	dir := t.TempDir()
	r := startServe(t, serve.Options{DataDir: dir, Services: []string{"registry"}})
	hs, err := serve.Check(context.Background(), serve.Options{DataDir: dir, Listen: strings.TrimPrefix(r.url, "nats://")})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, h := range hs {
		seen[h.Name] = h.Replicas
	}
	for _, want := range []string{events.StreamEvents, events.StreamState, events.StreamDLQ, "KV_" + events.BucketClusters, "KV_" + events.BucketUsers} {
		if seen[want] != 1 {
			t.Errorf("%s: replicas %d in %v, want 1 on the embedded server", want, seen[want], seen)
		}
	}
	var b strings.Builder
	serve.WriteCheck(&b, hs)
	if !strings.Contains(b.String(), "REPLICAS") || !strings.Contains(b.String(), events.StreamEvents) {
		t.Fatalf("table:\n%s", b.String())
	}
}
