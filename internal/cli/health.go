package cli

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// healthCmd probes a /healthz or /readyz URL: scratch images have no curl, so
// compose healthchecks call the binary itself.
func (a *app) healthCmd() *cobra.Command {
	return &cobra.Command{
		Use: "health URL", Short: "Exit 0 if URL answers 200 (for container health checks)", Args: exactArgs(1, "URL"),
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
			if err != nil {
				return &flagError{err}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s answered %s", args[0], resp.Status)
			}
			return nil
		},
	}
}
