package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"

	rh "github.com/rhq/rh"
)

// InstallOptions are rhcli install's: where to run, and what beyond the
// packages named.
type InstallOptions struct {
	RunOptions
	// Requirements is a local requirements file: it is uploaded to each
	// node (under ~/.rh/install, removed after) and installed with pip -r.
	Requirements string
	// Conda installs into this conda environment (conda run -n ENV python
	// -m pip install), on nodes that have conda; a node without conda on
	// its PATH fails with exit code 127 and says so.
	Conda string
}

// condaEnvRe is what conda accepts as an environment name.
var condaEnvRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// installScript runs pip as InstallOptions asks: $1 the conda environment
// (or empty), $2 the uploaded requirements file relative to the home (or
// empty: the command may run in another --dir), then the packages.
const installScript = `env=$1; req=$2; shift 2
case $req in ""|/*) ;; *) req=$HOME/$req ;; esac
if [ -n "$req" ]; then set -- -r "$req" "$@"; fi
if [ -n "$env" ]; then
	if ! command -v conda >/dev/null 2>&1; then
		echo "rh install: --conda $env: conda is not installed on this node (no conda on PATH)" >&2
		[ -z "$req" ] || rm -f "$req"
		exit 127
	fi
	conda run -n "$env" python -m pip install "$@"
else
	python3 -m pip install "$@"
fi
rc=$?
[ -z "$req" ] || rm -f "$req"
exit $rc`

// InstallWith pip-installs packages and, with o.Requirements, a
// requirements file, into o.Conda's environment when set; as rhcli install
// --requirements FILE --conda ENV. One result per node, as Run.
func (c *Client) InstallWith(ctx context.Context, name string, packages []string, o InstallOptions) ([]RunResult, error) {
	if len(packages) == 0 && o.Requirements == "" {
		return nil, rh.Invalid("packages", "name at least one package or a requirements file")
	}
	if o.Conda != "" && !condaEnvRe.MatchString(o.Conda) {
		return nil, rh.Invalid("conda", "%q is not a conda environment name (letters, digits, '_', '.', '-')", o.Conda)
	}
	if o.Requirements == "" && o.Conda == "" {
		return c.RunArgv(ctx, name, InstallArgv(packages), o.RunOptions)
	}
	remote := ""
	if o.Requirements != "" {
		var err error
		if remote, err = c.uploadRequirements(ctx, name, o.Requirements, o.Node); err != nil {
			return nil, err
		}
	}
	argv := append([]string{"sh", "-c", installScript, "rh-install", o.Conda, remote}, packages...)
	return c.RunArgv(ctx, name, argv, o.RunOptions)
}

// uploadRequirements puts the requirements file on the chosen nodes under
// a name of its content, relative to the login directory.
func (c *Client) uploadRequirements(ctx context.Context, name, local, node string) (string, error) {
	f, err := os.Open(local)
	if err != nil {
		return "", &rh.Error{Code: rh.EINVALID, Field: "requirements", Message: fmt.Sprintf("requirements file: %v", err)}
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", rh.Invalid("requirements", "%s is not a regular file", local)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", &rh.Error{Code: rh.EINVALID, Field: "requirements", Message: fmt.Sprintf("read %s: %v", local, err)}
	}
	remote := path.Join(".rh", "install", hex.EncodeToString(h.Sum(nil))[:16]+"-"+filepath.Base(local))
	if _, err := c.Upload(ctx, name, local, remote, SyncOptions{Node: node, WholeFile: true}); err != nil {
		return "", fmt.Errorf("upload %s: %w", local, err)
	}
	return remote, nil
}
