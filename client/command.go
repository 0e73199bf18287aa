package client

import (
	"context"
	"strings"

	"github.com/rhq/rh/internal/sshx"
)

// CommandLine is the remote shell command line for argv, the rule rhcli
// run follows for the words after "--" (as kubectl exec and docker exec):
// a single word is already a shell command line ("cd src && make");
// several words are one command's arguments, which must reach it
// unchanged, so each is quoted (joined with spaces they would be split and
// expanded again by the remote shell).
func CommandLine(argv []string) string {
	if len(argv) == 1 {
		return argv[0]
	}
	return QuoteArgv(argv)
}

// QuoteArgv quotes each word for a POSIX shell and joins them with spaces.
// Words of only safe characters stay as they are, so the command reads
// plainly in ps and in `cluster status`.
func QuoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, w := range argv {
		q[i] = shellWord(w)
	}
	return strings.Join(q, " ")
}

func shellWord(w string) string {
	if w == "" {
		return "''"
	}
	for _, c := range w {
		// No '=' (a first word FOO=bar would be an assignment) and no '~'
		// (tilde expansion).
		safe := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_-./,:@%+", c)
		if !safe {
			return sshx.ShellQuote(w)
		}
	}
	return w
}

// PythonCommand is the command line that runs code with python3 -c, args
// reaching it as sys.argv[1:] as given.
func PythonCommand(code string, args []string) string { return QuoteArgv(PythonArgv(code, args)) }

// PythonArgv is the argv that runs code with python3 -c, args reaching it as
// sys.argv[1:].
func PythonArgv(code string, args []string) []string {
	return append([]string{"python3", "-c", code}, args...)
}

// InstallCommand is the command line that pip-installs packages.
func InstallCommand(packages []string) string { return QuoteArgv(InstallArgv(packages)) }

// InstallArgv is the argv that pip-installs packages.
func InstallArgv(packages []string) []string {
	return append([]string{"python3", "-m", "pip", "install"}, packages...)
}

// RunPython runs Python code with python3 -c on the cluster's nodes (as
// rhcli run-python); args become its sys.argv[1:].
func (c *Client) RunPython(ctx context.Context, name, code string, args []string, o RunOptions) ([]RunResult, error) {
	return c.RunArgv(ctx, name, PythonArgv(code, args), o)
}

// Install pip-installs packages on the cluster's nodes (as rhcli install,
// which picks every node unless o.Node says otherwise). InstallWith adds a
// requirements file and a conda environment.
func (c *Client) Install(ctx context.Context, name string, packages []string, o RunOptions) ([]RunResult, error) {
	return c.InstallWith(ctx, name, packages, InstallOptions{RunOptions: o})
}
