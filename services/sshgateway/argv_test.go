package sshgateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/services/sshgateway"
)

// Words after "--" reach the command exactly as typed, through the agent
// (exec'd word for word inside the login environment) and over plain
// sessions (each quoted for the shell) alike, from rhcli and the SDK; a
// single word is a shell command line.
func TestArgvRoundTripsThroughAgentAndPlainSessions(t *testing.T) {
	words := []string{"a b", "$HOME", "*", "it's", `"q"`, "", "~", "x;y", "`id`", "$(echo no)", "\\n", "-n"}
	want := ""
	for _, w := range words {
		want += w + "|"
	}
	for _, agent := range []bool{true, false} {
		t.Run(fmt.Sprintf("agent=%v", agent), func(t *testing.T) {
			e := startWith(t, func(c *sshgateway.Config) { c.DisableAgent = !agent })
			e.oneNode(t, "argv", sshnode.Options{})
			if l := e.live(t, "argv"); (l.Agent == api.AgentRunning) != agent {
				t.Fatalf("agent state %q, want running=%v", l.Agent, agent)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			argv := append([]string{"printf", "%s|"}, words...)
			res, err := e.cl.RunArgv(ctx, "argv", argv, client.RunOptions{Capture: true})
			if err != nil || len(res) != 1 || res[0].ExitCode != 0 || res[0].Stdout != want {
				t.Fatalf("SDK RunArgv = %+v, %v; want stdout %q", res, err, want)
			}
			res, err = e.cl.RunWords(ctx, "argv", []string{"echo $((1+2)) *.nothing-matches"}, client.RunOptions{Capture: true})
			if err != nil || res[0].Stdout != "3 *.nothing-matches\n" {
				t.Fatalf("SDK one-word command line = %+v, %v", res, err)
			}
			res, err = e.cl.RunPython(ctx, "argv", "import sys; print('|'.join(sys.argv[1:]))", []string{"a b", "$HOME", "*"}, client.RunOptions{Capture: true})
			if err != nil || res[0].Stdout != "a b|$HOME|*\n" {
				t.Fatalf("SDK RunPython = %+v, %v", res, err)
			}
			code, out, stderr := e.rhcli(t, append([]string{"run", "argv", "--"}, argv...)...)
			if code != 0 || out != want {
				t.Fatalf("rhcli run -- printf ... = %d %q %q; want %q", code, out, stderr, want)
			}
			code, out, stderr = e.rhcli(t, "run", "argv", "--", "sh", "-c", `echo "a b"`)
			if code != 0 || out != "a b\n" {
				t.Fatalf(`rhcli run -- sh -c 'echo "a b"' = %d %q %q`, code, out, stderr)
			}
			code, out, stderr = e.rhcli(t, "run", "argv", "--", "echo $((2+3)) && echo done")
			if code != 0 || out != "5\ndone\n" {
				t.Fatalf("rhcli run -- 'command line' = %d %q %q", code, out, stderr)
			}
			// A missing program is the shell's 127, as over ssh.
			res, err = e.cl.RunArgv(ctx, "argv", []string{"no-such-program-rh", "x"}, client.RunOptions{Capture: true})
			if err != nil || res[0].ExitCode != 127 {
				t.Fatalf("missing program = %+v, %v", res, err)
			}
		})
	}
}
