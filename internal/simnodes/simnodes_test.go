package simnodes_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rhq/rh/internal/simnodes"
	"github.com/rhq/rh/internal/sshnode"
)

func login(t *testing.T, host string, port int, user string, key []byte) error {
	t.Helper()
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	if err != nil {
		return err
	}
	return c.Close()
}

func TestSkyPilotNodesAcceptTheClusterKeyAndRelease(t *testing.T) {
	p := simnodes.New(simnodes.Options{})
	t.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()
	eps, err := p.Provision(ctx, "c1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || eps[0].ExternalIP == eps[1].ExternalIP || p.Live("c1") != 2 {
		t.Fatalf("endpoints = %+v", eps)
	}
	for _, ep := range eps {
		if err := login(t, ep.ExternalIP, ep.SSHPort, ep.SSHUser, ep.PrivateKeyPEM); err != nil {
			t.Fatalf("login to %s: %v", ep.ExternalIP, err)
		}
	}
	other, err := p.Provision(ctx, "c2", 1)
	if err != nil {
		t.Fatal(err)
	}
	if login(t, other[0].ExternalIP, other[0].SSHPort, other[0].SSHUser, eps[0].PrivateKeyPEM) == nil {
		t.Fatal("one cluster's key opens another cluster's node")
	}
	if err := p.Release(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(ctx, "c1"); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if p.Live("c1") != 0 || login(t, eps[0].ExternalIP, eps[0].SSHPort, eps[0].SSHUser, eps[0].PrivateKeyPEM) == nil {
		t.Fatal("released nodes still accept logins")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p.Live("") != 0 {
		t.Fatal("nodes left after Close")
	}
}

func TestSageMakerAdapterAuthorizesTheJobKey(t *testing.T) {
	p := simnodes.New(simnodes.Options{})
	t.Cleanup(func() { _ = p.Close() })
	key, err := sshnode.GenerateUserKey(sshnode.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	sm := p.SageMaker()
	eps, err := sm.Provision(context.Background(), "job-1", 2, key.AuthorizedKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if err := login(t, ep.Host, ep.Port, ep.User, key.PrivatePEM); err != nil {
			t.Fatalf("login with the job's key to %s: %v", ep.Host, err)
		}
	}
	if err := sm.Release(context.Background(), "job-1"); err != nil {
		t.Fatal(err)
	}
	if p.Live("") != 0 {
		t.Fatal("nodes left after Release")
	}
}
