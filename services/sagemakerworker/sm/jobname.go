package sm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/rhq/rh/internal/lazyre"
)

// jobNameRE is SageMaker's rule without its length bound ({0,62} of a group
// compiles into a large program at every start of rhcli): ValidJobName checks
// the length apart.
var jobNameRE = lazyre.New(`^[a-zA-Z0-9](-*[a-zA-Z0-9])*$`)

// ValidJobName checks a training job name against SageMaker's rule.
func ValidJobName(name string) error {
	if !jobNameRE.MatchString(name) || len(name) > 63 {
		return fmt.Errorf("job name %q must match ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$ (1-63 letters, digits and inner hyphens)", name)
	}
	return nil
}

// JobName is the training job name of a cluster's generation:
// rh-<cluster>-<generation>. It is deterministic so that every retry of a
// create — ours, the SDK's, a redelivered event — names the same job and can
// never start a second one (AWS answers ResourceInUse instead). Characters
// outside [a-z0-9-] become hyphens; when anything was changed or the name
// would pass 63 characters, the cluster part is cut and an 8-hex hash of the
// original cluster name keeps distinct clusters distinct.
func JobName(cluster string, generation int64) string {
	gen := strconv.FormatInt(generation, 10)
	if generation < 0 {
		gen = "n" + strconv.FormatInt(-generation, 10)
	}
	var b strings.Builder
	for _, r := range strings.ToLower(cluster) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	clean := strings.Trim(b.String(), "-")
	lossy := clean != cluster
	const prefix, maxLen = "rh-", 63
	name := prefix + clean + "-" + gen
	if clean == "" {
		name = prefix + gen
	}
	if !lossy && len(name) <= maxLen {
		return name
	}
	sum := sha256.Sum256([]byte(cluster))
	hash := hex.EncodeToString(sum[:4])
	room := maxLen - len(prefix) - len(gen) - len(hash) - 2 // two hyphens
	if room < 0 {
		// Only an absurd generation gets here; keep the hash and the tail.
		name = prefix + hash + "-" + gen
		return strings.TrimLeft(name[len(name)-maxLen:], "-")
	}
	if len(clean) > room {
		clean = strings.TrimRight(clean[:room], "-")
	}
	if clean == "" {
		return prefix + hash + "-" + gen
	}
	return prefix + clean + "-" + hash + "-" + gen
}
