package sm

import (
	"fmt"
	"strings"
)

// SSMTarget is the SSM target of node n (1-based) of a training job with
// RemoteDebugConfig enabled. It is what the cluster record stores as the
// node's address: SSH reaches it through SSMProxyCommand.
func SSMTarget(job string, n int) string {
	return fmt.Sprintf("sagemaker-training-job:%s_algo-%d", job, n)
}

// SSMTargets lists the targets of a job's n nodes; the first is the head.
func SSMTargets(job string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = SSMTarget(job, i+1)
	}
	return out
}

// SSMProxyCommand is the SSH ProxyCommand that carries an SSH stream over
// SSM Session Manager: `aws ssm start-session --target T --document-name
// AWS-StartSSHSession --parameters portNumber=%p`. An empty target gives
// %h, so the node address (an SSM target) can be the SSH host name. It
// needs the AWS CLI and session-manager-plugin on PATH; profile and region,
// when given, are passed on so the CLI uses the worker's account.
func SSMProxyCommand(target string, profileRegion ...string) string {
	if target == "" {
		target = "%h"
	}
	var b strings.Builder
	b.WriteString("aws")
	if len(profileRegion) > 0 && profileRegion[0] != "" {
		b.WriteString(" --profile " + shellQuote(profileRegion[0]))
	}
	if len(profileRegion) > 1 && profileRegion[1] != "" {
		b.WriteString(" --region " + shellQuote(profileRegion[1]))
	}
	b.WriteString(" ssm start-session --target " + target + " --document-name AWS-StartSSHSession --parameters portNumber=%p")
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
