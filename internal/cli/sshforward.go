package cli

import (
	"strings"

	"github.com/spf13/cobra"

	rh "github.com/rhq/rh"
)

// sshForwards are the port forwards `rhcli ssh` passes to OpenSSH, in its
// own flag letters.
type sshForwards struct {
	local, remote, dynamic []string
	noCommand              bool
}

func (f *sshForwards) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.local, "local-forward", "L", nil, "[bind_address:]port:host:hostport, passed to ssh -L (repeatable)")
	fl.StringArrayVarP(&f.remote, "remote-forward", "R", nil, "[bind_address:]port:host:hostport, passed to ssh -R (repeatable)")
	fl.StringArrayVarP(&f.dynamic, "dynamic-forward", "D", nil, "[bind_address:]port, passed to ssh -D (repeatable)")
	fl.BoolVarP(&f.noCommand, "no-command", "N", false, "run no remote command, only forward ports (ssh -N)")
}

// args are the OpenSSH options for the forwards. A forward that cannot be
// set up fails ssh at once (ExitOnForwardFailure) instead of leaving a
// session without the port the user asked for.
func (f *sshForwards) args(command []string) ([]string, error) {
	var out []string
	for _, set := range []struct {
		flag  string
		specs []string
	}{{"-L", f.local}, {"-R", f.remote}, {"-D", f.dynamic}} {
		for _, s := range set.specs {
			// One word that is not an option: OpenSSH reads it as the
			// forward and nothing else.
			if s == "" || strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t\r\n") {
				return nil, rh.Invalid(set.flag, "%q is not a forward ([bind_address:]port:host:hostport)", s)
			}
			out = append(out, set.flag, s)
		}
	}
	if f.noCommand {
		if len(command) > 0 {
			return nil, rh.Invalid("-N", "runs no remote command, but one was given")
		}
		out = append(out, "-N")
	}
	if len(out) > 0 {
		out = append(out, "-o", "ExitOnForwardFailure=yes")
	}
	return out, nil
}
