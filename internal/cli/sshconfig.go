package cli

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/sshx"
)

// byoFlagsSet tells which BYO settings the user gave explicitly; those win
// over ~/.ssh/config.
type byoFlagsSet struct{ user, port, proxy, jump, key bool }

// resolveSSHAliases lets --ips name hosts of the user's ~/.ssh/config, as
// `ssh alias` would: HostName, Port, User, IdentityFile, ProxyCommand and
// ProxyJump come from the config unless given as flags. The gateway runs
// elsewhere and cannot read this machine's config, so it is resolved here,
// once, into the spec (and the key into the secret store).
func resolveSSHAliases(b *rh.BYOSpec, configPath string, given byoFlagsSet, secrets *rh.Secrets) error {
	type found struct {
		port  int
		user  string
		proxy string
		jump  string
	}
	var first *found
	for i, entry := range b.IPs {
		if net.ParseIP(entry) != nil {
			continue
		}
		t, err := sshx.ResolveConfig(configPath, entry)
		if err != nil {
			return rh.Invalid(fmt.Sprintf("byo.ips[%d]", i), "%v", err)
		}
		isAlias := t.Host != entry || t.User != "" || len(t.PrivateKey) > 0 || t.ProxyCommand != "" || t.JumpHost != nil || (t.Port != 0 && t.Port != 22)
		if !isAlias {
			continue
		}
		f := found{port: t.Port, user: t.User, proxy: t.ProxyCommand}
		if t.JumpHost != nil {
			if t.JumpHost.JumpHost != nil {
				return rh.Invalid(fmt.Sprintf("byo.ips[%d]", i), "%s uses a multi-hop ProxyJump; rh supports one jump host", entry)
			}
			f.jump = net.JoinHostPort(t.JumpHost.Host, strconv.Itoa(max(t.JumpHost.Port, 22)))
			if t.JumpHost.User != "" {
				f.jump = t.JumpHost.User + "@" + f.jump
			}
		}
		if first == nil {
			first = &f
			if !given.key && len(t.PrivateKey) > 0 && secrets.SSHPrivateKey == "" {
				secrets.SSHPrivateKey = string(t.PrivateKey)
			}
		} else if *first != f {
			// A BYO cluster has one port, user and route for all its nodes.
			return rh.Invalid(fmt.Sprintf("byo.ips[%d]", i), "%s differs from the first host's Port, User, ProxyCommand or ProxyJump in your ssh config; a cluster's nodes share them", entry)
		}
		b.IPs[i] = t.Host
	}
	if first == nil {
		return nil
	}
	if !given.port && first.port != 0 {
		b.SSHPort = first.port
	}
	if !given.user && first.user != "" {
		b.SSHUser = first.user
	}
	if !given.proxy && first.proxy != "" {
		b.ProxyCommand = first.proxy
	}
	if !given.jump && first.jump != "" {
		b.JumpHost = first.jump
	}
	return nil
}

func sshConfigPath(getenv func(string) string) string {
	if p := getenv("RH_SSH_CONFIG"); p != "" {
		return p
	}
	return filepath.Join(getenv("HOME"), ".ssh", "config")
}
