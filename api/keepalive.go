package api

// KeepAliveAutostopSubject is the gateway's services-only endpoint that
// rewrites the idle limit a SageMaker keep-alive loop reads on every node
// (its autostop_mins file), so an autostop change reaches a running job.
// It lives outside rh.api.>, which people reach through their account's
// import: only rh's own services (the sagemakerworker) may publish to it.
const KeepAliveAutostopSubject = "rh.svc.ssh.keepalive-autostop"

// KeepAliveAutostopRequest sets a cluster's keep-alive idle limit.
type KeepAliveAutostopRequest struct {
	Name    string `json:"name"`
	Minutes int    `json:"minutes"` // -1: never
}

// KeepAliveAutostopReply says on how many nodes the limit was written.
type KeepAliveAutostopReply struct {
	Name  string `json:"name"`
	Nodes int    `json:"nodes"`
}
