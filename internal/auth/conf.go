package auth

import (
	"fmt"
	"slices"
	"strings"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/api"
)

// Service users. "serve" is the embedded default's own user: it sets up
// streams and buckets and, in one process, runs every service.
const (
	SvcServe           = "serve"
	SvcRegistry        = "registry"
	SvcSSHGateway      = "sshgateway"
	SvcSkyWorker       = "skyworker"
	SvcSageMakerWorker = "sagemakerworker"
)

// bucketIntake is events.BucketIntake (auth does not import events).
const bucketIntake = "rh_intake"

// ServiceNames lists the service users in a stable order.
var ServiceNames = []string{SvcServe, SvcRegistry, SvcSSHGateway, SvcSkyWorker, SvcSageMakerWorker}

// Subjects the services export to users. Requests that get one answer go to
// rh.api.>; requests answered by a stream of messages (run output, walk
// pages, record watches) go to rh.stream.>, exported with streamed responses
// so every message reaches the caller's inbox; rh.ssh.> carries a run's
// cancels, acks and input, and open files' operations.
const (
	APISubjects     = "rh.api.>"
	StreamSubjects  = "rh.stream.>"
	ControlSubjects = "rh.ssh.>"
	// SharedCancelSubjects is the part of ControlSubjects every user may
	// publish to (the gateway heeds only a run's own user); the rest is
	// under each user's own api.ControlPrefix.
	SharedCancelSubjects = "rh.ssh.cancel.*"
	// IntakeSubjects take requests from systems that speak only events:
	// exported as a service (users publish), captured by the stream
	// RH_INTAKE; each user may publish only to its own (IntakeSubject).
	IntakeSubjects = "rh.intake.>"
	// OutcomeSubjects carry the answers to intake requests,
	// rh.outcome.<publisher's nkey>.<cluster>: exported as a stream, and
	// each user may subscribe only to its own key's.
	OutcomeSubjects = "rh.outcome.>"
)

// OutcomePrefix is the outcome subject prefix of the user with nkey key.
func OutcomePrefix(key string) string { return "rh.outcome." + key }

// Permissions are one NATS user's allow and deny lists.
type Permissions struct {
	PubAllow, PubDeny, SubAllow, SubDeny []string
}

// bucketReadDeny denies reading a KV bucket's values (direct get, message
// get, consumers) while still allowing puts and deletes.
func bucketReadDeny(bucket string) []string {
	s := "KV_" + bucket
	return []string{
		"$JS.API.DIRECT.GET." + s, "$JS.API.DIRECT.GET." + s + ".>",
		"$JS.API.STREAM.MSG.GET." + s,
		"$JS.API.CONSUMER.CREATE." + s, "$JS.API.CONSUMER.CREATE." + s + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + s + ".>",
	}
}

// bucketDeny denies any use of a KV bucket.
func bucketDeny(bucket string) (pub []string) {
	return append(bucketReadDeny(bucket), "$KV."+bucket+".>")
}

// common is what every service needs: the JetStream API, acks, flow
// control, its inboxes, answering requests, and micro's discovery.
var common = Permissions{
	PubAllow: []string{"$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "_INBOX.>", "_R_.>", "$SRV.>"},
	SubAllow: []string{"_INBOX.>", "$SRV.>"},
}

// ServicePermissions is the per-service table of docs/architecture.md
// ("NATS permissions per service"), made real: each service publishes only
// its own reports and reads only the buckets it needs.
func ServicePermissions(service string) (Permissions, error) {
	p := Permissions{PubAllow: slices.Clone(common.PubAllow), SubAllow: slices.Clone(common.SubAllow)}
	add := func(pub, sub []string) {
		p.PubAllow = append(p.PubAllow, pub...)
		p.SubAllow = append(p.SubAllow, sub...)
	}
	switch service {
	case SvcServe:
		// The embedded default runs every service on this one user.
		add([]string{"rh.>", "$KV.>", "$JS.EVENT.>"}, []string{"rh.>", "$JS.EVENT.>", "$KV.>"})
	case SvcRegistry:
		add([]string{"rh.cluster.create.*", "rh.cluster.teardown.*", "rh.cluster.update.*", "rh.cluster.refresh.*",
			"rh.dlq.>", OutcomeSubjects, "$KV.rh_clusters.>", "$KV.rh_secrets.>", "$KV." + BucketUsers + ".>", "$KV." + bucketIntake + ".>"},
			[]string{"rh.api.registry.>", "rh.api.users.>", "rh.stream.registry.>", "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"})
		p.PubDeny = append(p.PubDeny, bucketReadDeny("rh_secrets")...)
		p.PubDeny = append(p.PubDeny, bucketDeny("rh_sky_requests")...)
		p.PubDeny = append(p.PubDeny, bucketDeny("rh_sm_jobs")...)
	case SvcSSHGateway:
		add([]string{"rh.cluster.state.byo.*", "rh.dlq.>", "$KV.rh_hostkeys.>"},
			[]string{"rh.api.ssh.>", "rh.stream.ssh.>", "rh.ssh.>", "rh.svc.ssh.>"})
		p.PubDeny = append(p.PubDeny, "$KV.rh_clusters.>", "$KV.rh_secrets.>", "$KV."+BucketUsers+".>")
		p.PubDeny = append(p.PubDeny, bucketDeny(bucketIntake)...)
		p.PubDeny = append(p.PubDeny, bucketDeny("rh_sky_requests")...)
		p.PubDeny = append(p.PubDeny, bucketDeny("rh_sm_jobs")...)
	case SvcSkyWorker:
		add([]string{"rh.cluster.state.ondemand.*", "rh.dlq.>", "$KV.rh_secrets.>", "$KV.rh_sky_requests.>"},
			[]string{"rh.api.check." + string(rh.KindOnDemand)})
		p.PubDeny = append(p.PubDeny, bucketReadDeny("rh_secrets")...)
		p.PubDeny = append(p.PubDeny, "$KV.rh_clusters.>", "$KV."+BucketUsers+".>")
		p.PubDeny = append(p.PubDeny, bucketDeny(bucketIntake)...)
		p.PubDeny = append(p.PubDeny, bucketDeny("rh_sm_jobs")...)
		p.PubDeny = append(p.PubDeny, bucketDeny("rh_hostkeys")...)
	case SvcSageMakerWorker:
		// It reads its own clusters' keys back on retries.
		// It asks the gateway to rewrite a running job's autostop file.
		add([]string{"rh.cluster.state.sagemaker.*", "rh.dlq.>", "$KV.rh_secrets.>", "$KV.rh_sm_jobs.>", "rh.svc.ssh.keepalive-autostop"},
			[]string{"rh.api.check." + string(rh.KindSageMaker)})
		p.PubDeny = append(p.PubDeny, "$KV.rh_clusters.>", "$KV."+BucketUsers+".>")
		p.PubDeny = append(p.PubDeny, bucketDeny(bucketIntake)...)
		p.PubDeny = append(p.PubDeny, bucketDeny("rh_sky_requests")...)
		p.PubDeny = append(p.PubDeny, bucketDeny("rh_hostkeys")...)
	default:
		return Permissions{}, errorf("no service %q", service)
	}
	return p, nil
}

// UserPermissions are every user's NATS permissions: requests to rh's
// exported subjects, its own control subjects (runs, open files) and intake, and replies
// on the user's own inbox prefix and outcomes on its own outcome prefix
// only — so no user sees another's answers (a connect reply carries a
// private key) or acks or feeds another's run.
func UserPermissions(key string) Permissions {
	return Permissions{
		PubAllow: []string{APISubjects, StreamSubjects, SharedCancelSubjects, api.ControlPrefix(key) + ".>", IntakeSubject(key)},
		SubAllow: []string{InboxPrefix(key) + ".>", OutcomePrefix(key) + ".>"},
	}
}

// InboxPrefix is the inbox prefix of the user with nkey key.
func InboxPrefix(key string) string { return "_INBOX." + key }

// ServerConfig is what the NATS accounts configuration is made from.
type ServerConfig struct {
	// ServiceKeys maps each service user name to its nkey (public).
	ServiceKeys map[string]string
	// Users are the people's users (all in RH_USERS).
	Users []rh.User
	// JetStream enables JetStream for the services account (always true for
	// a real deployment; the accounts block is also used on its own).
	JetStream bool
}

// AccountsBlock renders the nats-server configuration's accounts block:
// the services account (JetStream, exports, service users with their
// permissions) and the users account (imports sharing client info, users
// confined to their inboxes). The output is valid nats-server configuration.
func AccountsBlock(c ServerConfig) (string, error) {
	var b strings.Builder
	b.WriteString("accounts {\n")
	fmt.Fprintf(&b, "  %s: {\n", ServicesAccount)
	if c.JetStream {
		b.WriteString("    jetstream: enabled\n")
	}
	b.WriteString("    users: [\n")
	for _, name := range ServiceNames {
		key, ok := c.ServiceKeys[name]
		if !ok {
			continue
		}
		p, err := ServicePermissions(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "      # service %s\n      {nkey: %s, permissions: %s}\n", name, q(key), permBlock(p))
	}
	b.WriteString("    ]\n    exports: [\n")
	fmt.Fprintf(&b, "      {service: %s}\n", q(APISubjects))
	fmt.Fprintf(&b, "      {service: %s, response_type: stream, response_threshold: \"2m\"}\n", q(StreamSubjects))
	fmt.Fprintf(&b, "      {service: %s}\n", q(ControlSubjects))
	fmt.Fprintf(&b, "      {service: %s}\n", q(IntakeSubjects))
	fmt.Fprintf(&b, "      {stream: %s}\n", q(OutcomeSubjects))
	b.WriteString("    ]\n  }\n")
	fmt.Fprintf(&b, "  %s: {\n    users: [\n", UsersAccount)
	users := slices.Clone(c.Users)
	slices.SortFunc(users, func(a, b rh.User) int { return strings.Compare(a.Name, b.Name) })
	for _, u := range users {
		fmt.Fprintf(&b, "      # user %s (%s)\n      {nkey: %s, permissions: %s}\n", u.Name, u.Role, q(u.Key), permBlock(UserPermissions(u.Key)))
	}
	b.WriteString("    ]\n    imports: [\n")
	for _, s := range []string{APISubjects, StreamSubjects, ControlSubjects, IntakeSubjects} {
		fmt.Fprintf(&b, "      {service: {account: %s, subject: %s}, share: true}\n", ServicesAccount, q(s))
	}
	fmt.Fprintf(&b, "      {stream: {account: %s, subject: %s}}\n", ServicesAccount, q(OutcomeSubjects))
	b.WriteString("    ]\n  }\n}\n")
	return b.String(), nil
}

func permBlock(p Permissions) string {
	part := func(allow, deny []string) string {
		s := "{allow: " + list(allow)
		if len(deny) > 0 {
			s += ", deny: " + list(deny)
		}
		return s + "}"
	}
	return "{publish: " + part(p.PubAllow, p.PubDeny) + ", subscribe: " + part(p.SubAllow, p.SubDeny) + "}"
}

func list(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = qs(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// qs quotes for nats-server's configuration syntax, which knows fewer
// escapes than JSON (no \u): subjects and keys hold neither quotes nor
// backslashes, but escape them anyway.
func qs(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func q(s string) string { return qs(s) }
