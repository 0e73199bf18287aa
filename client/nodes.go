package client

import (
	"context"

	"github.com/rhq/rh/api"
)

// Nodes lists the labels of the cluster's nodes a selector picks.
func (c *Client) Nodes(ctx context.Context, name, node string) ([]string, error) {
	r, err := gatewayCall[api.NodesReply](ctx, c, api.SSHOpNodes, api.NodesRequest{Name: name, Node: node})
	if err != nil {
		return nil, err
	}
	return r.Nodes, nil
}

// SSHInfo returns what an SSH client needs to reach one node, including the
// cluster's private key: keep it out of output and logs.
func (c *Client) SSHInfo(ctx context.Context, name, node string) (*api.ConnectReply, error) {
	return gatewayCall[api.ConnectReply](ctx, c, api.SSHOpConnect, api.ConnectRequest{Name: name, Node: node})
}

// Trust forgets the recorded host keys of the cluster's nodes, after a
// legitimate change (a reinstalled machine); the next Up records the new
// ones. It returns the host:port forgotten.
func (c *Client) Trust(ctx context.Context, name string) ([]string, error) {
	r, err := gatewayCall[api.TrustReply](ctx, c, api.SSHOpTrust, api.NameRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return r.Forgotten, nil
}

// LiveStatus reports the live state of a cluster's nodes (node "" = all):
// agent version and uptime, CPU, memory, disk and GPU use, running commands;
// or, for a node without an agent, why.
func (c *Client) LiveStatus(ctx context.Context, name, node string) (*api.LiveReply, error) {
	return gatewayCall[api.LiveReply](ctx, c, api.SSHOpStatus, api.LiveRequest{Name: name, Node: node})
}

// RestartAgent kills and restarts the agent on a cluster's nodes (node "" =
// all) and reports the new agents.
func (c *Client) RestartAgent(ctx context.Context, name, node string) (*api.LiveReply, error) {
	return gatewayCall[api.LiveReply](ctx, c, api.SSHOpRestartAgent, api.LiveRequest{Name: name, Node: node})
}

// gatewayCall is Call to the gateway's endpoint op (api.SSHSubject).
func gatewayCall[Resp any](ctx context.Context, c *Client, op string, req any) (*Resp, error) {
	var r Resp
	if err := c.Call(ctx, api.SSHSubject(op), req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
