package sshx

import (
	"testing"
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
