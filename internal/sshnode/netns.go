package sshnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
)

// NetnsPrefix starts the name of every network namespace the harness makes,
// followed by the owning process id, so CleanupLeftovers can tell whose it is.
const NetnsPrefix = "rhtest-"

// netnsBase is the private range carved into /30 links, one per namespace.
// 10.213/16 is arbitrary; it only has to stay clear of the machine's routes.
var netnsBase = netip.MustParseAddr("10.213.0.0")

var netnsSeq atomic.Uint64

// netns is a network namespace joined to the host by a veth pair:
// host side .1, namespace side .2 of a /30.
type netns struct {
	name         string
	hostIf, nsIf string
	hostIP, nsIP netip.Addr
	deleted      bool
}

func runIP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func listNetns(ctx context.Context) []string {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// newNetns creates the namespace and link. Allocation of the /30 is
// serialised across processes with a lock file, and skips subnets already
// configured on the host, so parallel test binaries never share addresses.
func newNetns(ctx context.Context) (_ *netns, err error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("sshnode: network namespaces need iproute2 (apt-get install iproute2): %w", err)
	}
	unlock, err := lockFile(ctx, "/tmp/rhtest-netns.lock")
	if err != nil {
		return nil, err
	}
	defer unlock()

	used := map[netip.Addr]bool{}
	if out, err := exec.CommandContext(ctx, "ip", "-4", "-o", "addr", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "inet" {
					if p, err := netip.ParsePrefix(f[i+1]); err == nil {
						used[p.Addr()] = true
					}
				}
			}
		}
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	tag := hex.EncodeToString(suffix[:])
	n := &netns{
		name:   fmt.Sprintf("%s%d-%d", NetnsPrefix, os.Getpid(), netnsSeq.Add(1)),
		hostIf: "rh" + tag + "h",
		nsIf:   "rh" + tag + "n",
	}
	start, _ := rand.Int(rand.Reader, big.NewInt(1<<14))
	for i := int64(0); i < 1<<14; i++ {
		idx := (start.Int64() + i) % (1 << 14)
		b := netnsBase.As4()
		off := uint32(idx) * 4
		b[2] += byte(off >> 8)
		b[3] += byte(off)
		host := netip.AddrFrom4(b).Next()
		if !used[host] && !used[host.Next()] {
			n.hostIP, n.nsIP = host, host.Next()
			break
		}
	}
	if !n.hostIP.IsValid() {
		return nil, fmt.Errorf("sshnode: no free /30 left in %s/16", netnsBase)
	}
	defer func() {
		if err != nil {
			n.delete(context.WithoutCancel(ctx))
		}
	}()
	steps := [][]string{
		{"netns", "add", n.name},
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf},
		{"link", "set", n.nsIf, "netns", n.name},
		{"addr", "add", n.hostIP.String() + "/30", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"-n", n.name, "addr", "add", n.nsIP.String() + "/30", "dev", n.nsIf},
		{"-n", n.name, "link", "set", n.nsIf, "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := runIP(ctx, s...); err != nil {
			return nil, fmt.Errorf("sshnode: netns setup: %w", err)
		}
	}
	// Permanent neighbour entries: with the link cut, packets are then
	// silently dropped (a real black hole, so clients see timeouts) instead
	// of failing ARP and reporting "no route to host" after three seconds.
	hostMAC, err := macOf(ctx, "", n.hostIf)
	if err != nil {
		return nil, err
	}
	nsMAC, err := macOf(ctx, n.name, n.nsIf)
	if err != nil {
		return nil, err
	}
	if err := runIP(ctx, "neigh", "replace", n.nsIP.String(), "lladdr", nsMAC, "dev", n.hostIf, "nud", "permanent"); err != nil {
		return nil, fmt.Errorf("sshnode: netns setup: %w", err)
	}
	if err := runIP(ctx, "-n", n.name, "neigh", "replace", n.hostIP.String(), "lladdr", hostMAC, "dev", n.nsIf, "nud", "permanent"); err != nil {
		return nil, fmt.Errorf("sshnode: netns setup: %w", err)
	}
	return n, nil
}

func macOf(ctx context.Context, ns, ifname string) (string, error) {
	args := []string{"-br", "link", "show", ifname}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := exec.CommandContext(ctx, "ip", args...).Output()
	if err != nil {
		return "", fmt.Errorf("sshnode: read MAC of %s: %w", ifname, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "", fmt.Errorf("sshnode: read MAC of %s: unexpected %q", ifname, out)
	}
	return f[2], nil
}

// cut takes the namespace side of the link down: the host keeps its route
// and neighbour entry, so traffic is dropped without any error reaching the
// sender, as when a machine or its switch port dies.
func (n *netns) cut(ctx context.Context) error {
	return runIP(ctx, "-n", n.name, "link", "set", n.nsIf, "down")
}

func (n *netns) restore(ctx context.Context) error {
	return runIP(ctx, "-n", n.name, "link", "set", n.nsIf, "up")
}

// delete removes the namespace (which destroys the veth pair) and, should
// the pair have survived, the host end. Errors are ignored: it is cleanup.
func (n *netns) delete(ctx context.Context) {
	if n.deleted {
		return
	}
	n.deleted = true
	_ = runIP(ctx, "netns", "del", n.name)
	_ = exec.CommandContext(ctx, "ip", "link", "del", n.hostIf).Run()
}
