package sshgateway_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/services/sshgateway"
)

// loginUser is a bash user whose rc files set variables the way conda,
// pyenv and locale setups do.
const loginUser = "rhlogintest"

func ensureLoginUser(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sshnode.EnsureUser(ctx, loginUser, "unused-"+strconv.Itoa(os.Getpid())); err != nil {
		t.Fatalf("cannot create the test user: %v", err)
	}
	if out, err := exec.CommandContext(ctx, "usermod", "-s", "/bin/bash", loginUser).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v: %s", err, out)
	}
	u, err := user.Lookup(loginUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	files := map[string]string{
		// No interactive guard, as conda init and pyenv's instructions
		// leave it: bash reads it for every command sshd runs.
		".bashrc": "export RH_FROM_BASHRC=yes\nexport CONDA_DEFAULT_ENV=rhenv\nexport PATH=\"$HOME/.rhlogin-bin:$PATH\"\nexport LC_RH_TEST=C.UTF-8\n",
		// Read by login shells only: `ssh node cmd` does not read it.
		".profile": "export RH_FROM_PROFILE=yes\n[ -f ~/.bashrc ] && . ~/.bashrc\n",
	}
	for name, body := range files {
		p := filepath.Join(u.HomeDir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Join(u.HomeDir, ".rh")) })
	return loginUser
}

// envOf runs env on the cluster and parses it.
func envOf(t *testing.T, cl *client.Client, name string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cl.RunArgv(ctx, name, []string{"env"}, client.RunOptions{Capture: true})
	if err != nil || len(res) != 1 || res[0].ExitCode != 0 {
		t.Fatalf("env: %+v, %v", res, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(res[0].Stdout), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

// Commands run through the agent see the environment a plain SSH session
// gives (`ssh node env`): SSH_CLIENT and SSH_CONNECTION, PATH and the
// variables ~/.bashrc exports, the locale, the same for both.
func TestAgentRunsInTheLoginEnvironment(t *testing.T) {
	u := ensureLoginUser(t)
	e := startWith(t, func(c *sshgateway.Config) { c.AgentVersion = testAgentVersion + "-login" })
	key := userKey(t, sshnode.KeyEd25519)
	n := sshnode.StartT(t, sshnode.Options{User: u, AuthorizedKeys: []string{key.AuthorizedKey}})
	e.create(t, "login", byoSpec(n), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	e.waitPhase(t, "login", rh.PhaseUp)
	if l := e.live(t, "login"); l.Agent != api.AgentRunning {
		t.Fatalf("agent: %+v", l)
	}
	viaAgent := envOf(t, e.cl, "login")
	e.swapGateway(t, func(c *sshgateway.Config) { c.DisableAgent = true })
	plain := envOf(t, e.cl, "login")

	for _, k := range []string{"SSH_CLIENT", "SSH_CONNECTION", "RH_FROM_BASHRC", "CONDA_DEFAULT_ENV", "LC_RH_TEST", "PATH", "HOME", "USER"} {
		if plain[k] == "" {
			t.Errorf("plain session has no %s: the test node is not set up as intended", k)
		}
	}
	if !strings.Contains(viaAgent["PATH"], ".rhlogin-bin") {
		t.Errorf("agent PATH %q lacks ~/.bashrc's entry", viaAgent["PATH"])
	}
	// Per process, or per connection (the client's port): not compared.
	skip := map[string]bool{"SHLVL": true, "_": true, "OLDPWD": true}
	for _, k := range []string{"SSH_CLIENT", "SSH_CONNECTION"} {
		// "client-ip client-port server-ip server-port": the gateway
		// reconnected in between, so only the port of its side differs.
		a, p := strings.Fields(viaAgent[k]), strings.Fields(plain[k])
		if len(a) < 3 || len(p) < 3 || a[0] != p[0] || a[len(a)-1] != p[len(p)-1] {
			t.Errorf("%s: agent %q, plain %q", k, viaAgent[k], plain[k])
		}
		skip[k] = true
	}
	var diffs []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range plain {
			if !yield(k) {
				return
			}
		}
		for k := range viaAgent {
			if _, ok := plain[k]; !ok && !yield(k) {
				return
			}
		}
	}) {
		if !skip[k] && plain[k] != viaAgent[k] {
			diffs = append(diffs, fmt.Sprintf("%s: agent %q, plain %q", k, viaAgent[k], plain[k]))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("environment through the agent differs from a plain session:\n%s", strings.Join(slices.Compact(diffs), "\n"))
	}
	// As `ssh node cmd`: ~/.profile is for login shells, read by neither.
	if viaAgent["RH_FROM_PROFILE"] != "" || plain["RH_FROM_PROFILE"] != "" {
		t.Errorf("~/.profile was read: agent %q, plain %q", viaAgent["RH_FROM_PROFILE"], plain["RH_FROM_PROFILE"])
	}
}
