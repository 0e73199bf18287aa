package sshx

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/rhq/rh/internal/testkit"
)

func TestParseFacts(t *testing.T) {
	f, err := parseFacts("os=Linux\nkernel=6.1.0\narch=x86_64\ndistro=Debian GNU/Linux 12 (bookworm)\ncpus=8\nmemkb=16384\n" +
		"gpu=NVIDIA A100-SXM4-80GB, 81920\ngpu=Tesla T4, [N/A]\n")
	if err != nil {
		t.Fatal(err)
	}
	if f.OS != "linux" || f.CPUs != 8 || f.MemoryBytes != 16384*1024 || len(f.GPUs) != 2 ||
		f.GPUs[0].Name != "NVIDIA A100-SXM4-80GB" || f.GPUs[0].MemoryBytes != 81920<<20 || f.GPUs[1].Name != "Tesla T4" {
		t.Fatalf("parsed %+v", f)
	}
}

func TestExpandProxyCommand(t *testing.T) {
	got, err := expandProxyCommand("ssh -W %h:%p %r@bastion 100%%", Target{Host: "n1", Port: 2222, User: "u"})
	if err != nil || got != "ssh -W n1:2222 u@bastion 100%" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := expandProxyCommand("x %z", Target{}); err == nil {
		t.Fatal("unknown token accepted")
	}
}

func TestPinnedHostKeysMatchAddrsAsDialed(t *testing.T) {
	key := func(b byte) ssh.PublicKey {
		k, err := ssh.NewPublicKey(ed25519.PublicKey(bytes.Repeat([]byte{b}, ed25519.PublicKeySize)))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	lines := []string{
		knownhosts.Line([]string{"10.0.0.1:22"}, key(1)),
		knownhosts.Line([]string{"127.0.0.5:2222"}, key(2)),
		knownhosts.Line([]string{"[sagemaker-training-job:rh-sm-1_algo-1]:22"}, key(3)),
	}
	store, err := PinnedHostKeys(lines)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, tg := range []Target{{Host: "10.0.0.1", Port: 22}, {Host: "127.0.0.5", Port: 2222}, {Host: "sagemaker-training-job:rh-sm-1_algo-1", Port: 22}} {
		k, ok, err := store.Lookup(ctx, tg.Addr())
		if err != nil || !ok || !bytes.Equal(k.Marshal(), key(byte(i+1)).Marshal()) {
			t.Errorf("Lookup(%s) = %v, %v, %v; want key %d", tg.Addr(), k, ok, err, i+1)
		}
	}
	if _, ok, _ := store.Lookup(ctx, "10.0.0.2:22"); ok {
		t.Error("a host without a line was found")
	}
	// Nothing is trusted on first use.
	if err := store.Record(ctx, "10.0.0.2:22", key(4)); err == nil {
		t.Error("Record of an unknown host succeeded")
	}
}

// The stop script's liveness check sees a running group as running and a
// group of only a zombie (a node whose PID 1 never reaps) as gone, so a
// cancel does not wait out the whole grace for it.
func TestStopScriptDoesNotWaitForZombies(t *testing.T) {
	runs := func(pgid int) bool {
		err := exec.Command("sh", "-c", groupRunsShell+"P="+strconv.Itoa(pgid)+"\nruns").Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return err == nil
	}
	if !runs(testkit.RunningGroup(t)) {
		t.Fatal("a group with a sleeping process does not run")
	}
	zombie := testkit.ZombieGroup(t)
	if runs(zombie) {
		t.Error("a group of only a zombie counts as running")
	}
	if !strings.Contains(stopScript(zombie), "while runs") {
		t.Error("the stop script does not use the check")
	}
}
