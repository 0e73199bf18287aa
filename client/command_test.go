package client

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCommandLineQuotesSeveralWordsAndKeepsOne(t *testing.T) {
	cases := []struct {
		argv []string
		want string
	}{
		{[]string{"cd src && make"}, "cd src && make"},
		{[]string{"echo $((1+2))"}, "echo $((1+2))"},
		{[]string{"ls", "-l", "/tmp/a.b_c,d:e@f%g+h"}, "ls -l /tmp/a.b_c,d:e@f%g+h"},
		{[]string{"sh", "-c", `echo "a b"`}, `sh -c 'echo "a b"'`},
		{[]string{"printf", "%s|", "a b", "$HOME", "*", ""}, `printf '%s|' 'a b' '$HOME' '*' ''`},
		{[]string{"X=1", "env"}, `'X=1' env`}, // a command named X=1, not an assignment
		{[]string{"echo", "~", "it's"}, `echo '~' 'it'\''s'`},
	}
	for _, tc := range cases {
		if got := CommandLine(tc.argv); got != tc.want {
			t.Errorf("CommandLine(%q) = %s, want %s", tc.argv, got, tc.want)
		}
	}
}

func TestPythonAndInstallCommandsKeepTheirWords(t *testing.T) {
	if got, want := PythonCommand("import sys; print(sys.argv[1:])", []string{"a b", "$HOME"}), `python3 -c 'import sys; print(sys.argv[1:])' 'a b' '$HOME'`; got != want {
		t.Errorf("PythonCommand = %s, want %s", got, want)
	}
	if got, want := InstallCommand([]string{"torch", "numpy>=2"}), `python3 -m pip install torch 'numpy>=2'`; got != want {
		t.Errorf("InstallCommand = %s, want %s", got, want)
	}
}

// The embedded default's operator credentials are used for any loopback
// URL, and never sent to another machine.
func TestLocalOperatorCredsOnlyForLoopback(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	creds := filepath.Join(home, ".rh", "auth", "operator.creds")
	if got := LocalOperatorCreds("nats://127.0.0.1:4222"); got != "" {
		t.Fatalf("without the file: %q", got)
	}
	if err := os.MkdirAll(filepath.Dir(creds), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(creds, []byte("creds"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"nats://127.0.0.1:4222", "nats://localhost:4222", "nats://127.0.0.5:4300", "nats://[::1]:4222", "127.0.0.1:4222", "nats://127.0.0.1:4222,nats://localhost:4223"} {
		if got := LocalOperatorCreds(u); got != creds {
			t.Errorf("LocalOperatorCreds(%q) = %q, want %s", u, got, creds)
		}
	}
	for _, u := range []string{"nats://10.0.0.5:4222", "nats://nats.example.com:4222", "nats://127.0.0.1.example.com:4222", "nats://localhost.example.com", "nats://0.0.0.0:4222", "%zz", "nats://127.0.0.1:4222,nats://10.0.0.5:4222"} {
		if got := LocalOperatorCreds(u); got != "" {
			t.Errorf("LocalOperatorCreds(%q) = %q, want none", u, got)
		}
	}
}
