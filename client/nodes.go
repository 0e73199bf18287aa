package client

import (
	"context"

	"github.com/rhq/rh/api"
)

// Nodes lists the labels of the cluster's nodes a selector picks.
func (c *Client) Nodes(ctx context.Context, name, node string) ([]string, error) {
	var r api.NodesReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpNodes), api.NodesRequest{Name: name, Node: node}, &r); err != nil {
		return nil, err
	}
	return r.Nodes, nil
}

// SSHInfo returns what an SSH client needs to reach one node, including the
// cluster's private key: keep it out of output and logs.
func (c *Client) SSHInfo(ctx context.Context, name, node string) (*api.ConnectReply, error) {
	var r api.ConnectReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpConnect), api.ConnectRequest{Name: name, Node: node}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Trust forgets the recorded host keys of the cluster's nodes, after a
// legitimate change (a reinstalled machine); the next Up records the new
// ones. It returns the host:port forgotten.
func (c *Client) Trust(ctx context.Context, name string) ([]string, error) {
	var r api.TrustReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpTrust), api.NameRequest{Name: name}, &r); err != nil {
		return nil, err
	}
	return r.Forgotten, nil
}

// LiveStatus reports the live state of a cluster's nodes (node "" = all):
// agent version and uptime, CPU, memory, disk and GPU use, running commands;
// or, for a node without an agent, why.
func (c *Client) LiveStatus(ctx context.Context, name, node string) (*api.LiveReply, error) {
	var r api.LiveReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpStatus), api.LiveRequest{Name: name, Node: node}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RestartAgent kills and restarts the agent on a cluster's nodes (node "" =
// all) and reports the new agents.
func (c *Client) RestartAgent(ctx context.Context, name, node string) (*api.LiveReply, error) {
	var r api.LiveReply
	if err := c.Call(ctx, api.SSHSubject(api.SSHOpRestartAgent), api.LiveRequest{Name: name, Node: node}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
