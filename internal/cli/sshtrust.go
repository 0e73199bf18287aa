package cli

import (
	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
)

// checkProxyConsent refuses to hand OpenSSH a proxy command that another
// user wrote into the cluster's spec: `rhcli ssh` runs it on this machine,
// as this user, so it is that user's code running here. rh's own proxy
// commands (SageMaker's SSM session, reported by its worker) and the
// caller's own are used as they are.
func checkProxyConsent(cluster string, info *api.ConnectReply, trusted bool) error {
	if info.ProxyCommand == "" || info.ProxyCommandBy == "" || info.ProxyCommandBy == info.Caller || trusted {
		return nil
	}
	return rh.Forbidden("cluster %q reaches its nodes through a proxy command that user %q wrote, and `rhcli ssh` would run it on this machine as you:\n  %s\nread it, then pass --trust-proxy-command to run it", cluster, info.ProxyCommandBy, info.ProxyCommand)
}

// proxyConsentFlagHelp documents --trust-proxy-command.
const proxyConsentFlagHelp = "run a proxy command another user wrote into the cluster's spec on this machine"
