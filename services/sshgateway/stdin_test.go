package sshgateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/sshnode"
	"github.com/rhq/rh/services/sshgateway"
)

// A run's input reaches its one node whole, through the agent and over a
// plain session alike; a command that stops reading ends the run all the
// same; and input for several nodes is refused before anything runs.
func TestRunInputReachesTheNode(t *testing.T) {
	t.Parallel()
	for _, agentOn := range []bool{true, false} {
		name := map[bool]string{true: "agent", false: "session"}[agentOn]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := startWith(t, func(c *sshgateway.Config) { c.DisableAgent = !agentOn })
			e.oneNode(t, "in", sshnode.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			in := make([]byte, 3<<20+17) // many chunks, the last one short
			_, _ = rand.Read(in)
			sum := sha256.Sum256(in)
			res, err := e.cl.Run(ctx, "in", "sha256sum", client.RunOptions{Stdin: bytes.NewReader(in), Capture: true})
			if err != nil || len(res) != 1 || res[0].ExitCode != 0 || !strings.HasPrefix(res[0].Stdout, hex.EncodeToString(sum[:])) {
				t.Fatalf("sha256sum of 3 MiB of input: %+v, %v", res, err)
			}

			// head takes 5 bytes and exits; the rest of an endless input
			// is refused, and Run returns.
			res, err = e.cl.Run(ctx, "in", "head -c 5", client.RunOptions{Stdin: io.MultiReader(strings.NewReader("hello"), zeros{}), Capture: true})
			if err != nil || res[0].ExitCode != 0 || res[0].Stdout != "hello" {
				t.Fatalf("head -c 5 of an endless input: %+v, %v", res, err)
			}
		})
	}
}

func TestRunInputForSeveralNodesIsRefused(t *testing.T) {
	t.Parallel()
	e := start(t)
	key := userKey(t, sshnode.KeyEd25519)
	nodes := keyNodes(t, 2, key)
	e.create(t, "two", byoSpec(nodes...), &rh.Secrets{SSHPrivateKey: string(key.PrivatePEM)})
	e.waitPhase(t, "two", rh.PhaseUp)
	_, err := e.cl.Run(context.Background(), "two", "cat", client.RunOptions{Node: "all", Stdin: strings.NewReader("x")})
	if !errors.Is(err, rh.ErrInvalid) || !strings.Contains(err.Error(), "stdin") {
		t.Fatalf("input to two nodes: %v, want invalid input naming stdin", err)
	}
}

// zeros is an endless input.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
