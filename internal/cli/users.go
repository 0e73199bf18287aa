package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/client"
	"github.com/rhq/rh/internal/auth"
)

func (a *app) shareCmd() *cobra.Command {
	var access string
	cmd := &cobra.Command{
		Use: "share NAME USER", Short: "Give a user read or write access to a cluster", Args: exactArgs(2, "NAME", "USER"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			c, err := cl.Share(ctx, args[0], args[1], rh.Access(access))
			if err != nil {
				return err
			}
			return a.print(c, func(w io.Writer) { clusterDetail(w, c) })
		}),
	}
	cmd.Flags().StringVar(&access, "access", string(rh.AccessRead), "read (see it) or write (also run, connect, change)")
	return cmd
}

func (a *app) unshareCmd() *cobra.Command {
	return &cobra.Command{
		Use: "unshare NAME USER", Short: "Take a user's access to a cluster away", Args: exactArgs(2, "NAME", "USER"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			c, err := cl.Unshare(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			return a.print(c, func(w io.Writer) { clusterDetail(w, c) })
		}),
	}
}

func (a *app) userCmd() *cobra.Command {
	c := &cobra.Command{Use: "user", Short: "Add, list and remove the users of rh (admins)"}
	c.AddCommand(a.userAddCmd(), a.userListCmd(), a.userRemoveCmd())
	return c
}

// userAdded is what `user add` prints; Creds only when no --file was given.
type userAdded struct {
	User  rh.User `json:"user"`
	Creds string  `json:"creds,omitempty"`
	File  string  `json:"file,omitempty"`
}

func (a *app) userAddCmd() *cobra.Command {
	var role, file string
	cmd := &cobra.Command{
		Use: "add NAME [--role admin|member|viewer] [--file PATH]", Short: "Create a user and write its credentials", Args: exactArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			if err := rh.ValidateUserName("name", args[0]); err != nil {
				return err
			}
			if !rh.Role(role).Valid() {
				return rh.Invalid("--role", "%q is not a role: use admin, member or viewer", role)
			}
			// Refuse before the user exists: its credentials can be made only once.
			if file != "" {
				if _, err := os.Lstat(file); err == nil {
					return rh.Invalid("--file", "%s exists; rhcli never overwrites a credentials file", file)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return rh.Invalid("--file", "cannot use %s: %v", file, err)
				}
			}
			u, creds, err := cl.AddUser(ctx, args[0], rh.Role(role))
			if err != nil {
				return err
			}
			out := userAdded{User: u}
			if file == "" {
				if a.output == "table" {
					_, err := a.io.Out.Write(creds)
					return err
				}
				out.Creds = string(creds)
				return a.print(out, nil)
			}
			if err := auth.WriteCredsFile(file, creds); err != nil {
				return fmt.Errorf("user %q was created but its credentials could not be written (%w); remove it (rhcli user remove %s) and add it again", u.Name, err, u.Name)
			}
			out.File = file
			return a.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "user %s (%s) added; credentials in %s (use --creds %s or RH_NATS_CREDS)\n", u.Name, u.Role, file, file)
			})
		}),
	}
	cmd.Flags().StringVar(&role, "role", string(rh.RoleMember), "admin, member or viewer")
	cmd.Flags().StringVar(&file, "file", "", "write the credentials to this file (mode 0600) instead of stdout")
	return cmd
}

func (a *app) userListCmd() *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List users", Args: exactArgs(0),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, _ []string) error {
			us, err := cl.ListUsers(ctx)
			if err != nil {
				return err
			}
			if us == nil {
				us = []rh.User{}
			}
			return a.print(us, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tROLE\tCREATED_BY\tCREATED_AT")
				for _, u := range us {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", u.Name, u.Role, dash(u.CreatedBy), dash(u.CreatedAt))
				}
			})
		}),
	}
}

func (a *app) userRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use: "remove NAME", Short: "Remove a user; its next request is refused", Args: exactArgs(1, "NAME"),
		RunE: a.withClient(func(ctx context.Context, cl *client.Client, args []string) error {
			if err := cl.RemoveUser(ctx, args[0]); err != nil {
				return err
			}
			return a.print(map[string]string{"removed": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "removed %s\n", args[0]) })
		}),
	}
}
