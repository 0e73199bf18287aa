package cli

import (
	"github.com/rhq/rh/api"
	"github.com/rhq/rh/client"
)

// checkProxyConsent refuses to hand OpenSSH a proxy command that another
// user wrote into the cluster's spec (client.CheckProxyConsent: the rule
// `rhcli ssh`, `rhcli tunnel` and the SDK's tunnels share).
func checkProxyConsent(cluster string, info *api.ConnectReply, trusted bool) error {
	return client.CheckProxyConsent(cluster, info, trusted)
}

// proxyConsentFlagHelp documents --trust-proxy-command.
const proxyConsentFlagHelp = "run a proxy command another user wrote into the cluster's spec on this machine"
