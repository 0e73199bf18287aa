// Command rhcli is rh's one binary: client commands, `rhcli serve` for the
// services, and `rhcli agent` on cluster nodes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rhq/rh/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
