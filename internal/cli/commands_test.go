package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestCommandTreeIsComplete pins rhcli's whole command tree: with every
// command listed in root() rather than registered from init(), a command
// dropped from (or added to) the list must show here.
func TestCommandTreeIsComplete(t *testing.T) {
	want := []string{
		"agent", // hidden
		"check",
		"cluster",
		"cluster autostop",
		"cluster create",
		"cluster delete",
		"cluster events",
		"cluster get",
		"cluster list",
		"cluster restart-agent",
		"cluster share",
		"cluster status",
		"cluster teardown",
		"cluster trust",
		"cluster unshare",
		"cluster up",
		"get",
		"health", // hidden
		"install",
		"nats-config",
		"notebook",
		"put",
		"run",
		"run-python",
		"serve",
		"sim",
		"sim nodes",
		"sim ssm-proxy",
		"ssh",
		"tunnel",
		"user",
		"user add",
		"user list",
		"user remove",
		"version",
	}
	var got []string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(slices.Clone(path), sub.Name())
			got = append(got, strings.Join(p, " "))
			walk(sub, p)
		}
	}
	walk((&app{}).root(), nil)
	slices.Sort(got)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("command %q is missing from the tree", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("command %q is in the tree but not in this test's list: add it here", g)
		}
	}
}
