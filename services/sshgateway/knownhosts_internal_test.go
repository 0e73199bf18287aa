package sshgateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// The known_hosts lines `rhcli ssh` and tunnels pin name each host as
// OpenSSH looks it up, including SageMaker's SSM targets, whose names hold
// a colon.
func TestKnownHostsLineNamesTheHostAsOpenSSHLooksItUp(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	for hostport, want := range map[string]string{
		"10.0.0.1:22":    "10.0.0.1",
		"127.0.0.5:2222": "[127.0.0.5]:2222",
		"[sagemaker-training-job:rh-sm-1_algo-1]:22": "sagemaker-training-job:rh-sm-1_algo-1",
	} {
		if got, _, _ := strings.Cut(knownhostsLine(hostport, k), " "); got != want {
			t.Errorf("known_hosts line for %s names %q, want %q", hostport, got, want)
		}
	}
}
