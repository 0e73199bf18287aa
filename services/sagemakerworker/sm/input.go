package sm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	rh "github.com/rhq/rh"
	"github.com/rhq/rh/internal/lazyre"
)

// Environment variables the worker puts on a job. The keep-alive loop reads
// the first four; the simulator (internal/sagemakersim) models the same
// contract under the same names. EnvCluster and EnvGeneration let a job whose
// create answer was lost be recognised as ours and adopted (DescribeTrainingJob
// returns Environment, not Tags).
const (
	EnvSSHPublicKey       = "RH_SSH_PUBLIC_KEY"
	EnvKeepAlive          = "RH_KEEPALIVE"
	EnvAutostopMins       = "RH_AUTOSTOP_MINS"
	EnvConnectionWaitTime = "RH_CONNECTION_WAIT_TIME"
	EnvCluster            = "RH_CLUSTER"
	EnvGeneration         = "RH_GENERATION"
	// EnvKeepAliveScriptPrefix_<i> carry the keep-alive script in chunks of
	// at most 512 characters (the Environment value limit).
	EnvKeepAliveScriptPrefix = "RH_KEEPALIVE_SCRIPT_"
)

// Tag keys naming the cluster on its job.
const (
	TagCluster    = "rh:cluster"
	TagGeneration = "rh:generation"
)

// Defaults, as Runhouse's SageMaker clusters had them.
const (
	DefaultInstanceType = "ml.m5.large"
	DefaultVolumeSizeGB = 30
	DefaultMaxRuntime   = 24 * time.Hour
	DefaultAutostopMins = rh.DefaultSageMakerAutostopMins
	maxEnvValue         = 512
)

// KeepAliveScript is the compute-backend entry point, run by bash: install
// the cluster's public key, start sshd (installing it if the image lacks it),
// wait connection_wait_time, then every 20 s read autostop_mins (from
// /opt/rh/autostop_mins, which `rhcli cluster autostop` may rewrite over SSH)
// and exit 0 — ending the job and releasing the instance — once nobody has
// had an SSH session and /opt/rh/activity has not been touched for longer
// than that. -1 never exits: the job runs until MaxRuntimeInSeconds.
const KeepAliveScript = `set -u
K=/opt/rh; mkdir -p $K ~/.ssh /run/sshd; chmod 700 ~/.ssh
echo "$RH_SSH_PUBLIC_KEY" >> ~/.ssh/authorized_keys; chmod 600 ~/.ssh/authorized_keys
[ -f $K/autostop_mins ] || echo "$RH_AUTOSTOP_MINS" > $K/autostop_mins
[ -x /usr/sbin/sshd ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server; } >/dev/null 2>&1
ssh-keygen -A >/dev/null 2>&1
/usr/sbin/sshd -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no
sleep "${RH_CONNECTION_WAIT_TIME:-0}"
l=$(date +%s)
while sleep 20; do
 n=$(date +%s)
 pgrep -f 'sshd: .*@' >/dev/null && l=$n
 t=$(stat -c %Y $K/activity 2>/dev/null || echo 0); [ "$t" -gt "$l" ] && l=$t
 a=$(cat $K/autostop_mins 2>/dev/null || echo -1)
 [ "$a" -ge 0 ] 2>/dev/null && [ $((n-l)) -gt $((a*60)) ] && exit 0
done
`

// ClusterSpec is what the worker knows about a SageMaker cluster when it
// launches one generation of it.
type ClusterSpec struct {
	Cluster    string
	Generation int64
	// JobName overrides JobName(Cluster, Generation) (--job-name).
	JobName string
	// RoleArn must already be resolved (ResolveRole).
	RoleArn string
	// Region picks the default image registry and output bucket.
	Region string

	InstanceType  string // default DefaultInstanceType
	InstanceCount int32  // default 1
	ImageURI      string // default DefaultImage(Region, InstanceType)
	VolumeSizeGB  int32  // default DefaultVolumeSizeGB
	MaxRuntime    time.Duration
	// AutostopMins: idle minutes before the keep-alive exits; -1 runs until
	// MaxRuntime; 0 means DefaultAutostopMins.
	AutostopMins int
	// ConnectionWaitTime holds the keep-alive's idle clock at start.
	ConnectionWaitTime time.Duration
	// PublicKey is the authorized_keys line put on every node. At most 512
	// characters: use ed25519 (RSA-4096 keys are too long).
	PublicKey string
	// OutputPath is the S3 prefix for artifacts; default
	// s3://sagemaker-<region>-<account>/rh/<cluster>/.
	OutputPath string
	// Estimator, when set, makes this an estimator cluster.
	Estimator *Estimator
	// Tags are extra tags (the rh: ones are added).
	Tags map[string]string
}

// DefaultImage is Runhouse's default: the PyTorch 2.0.1 training image, GPU
// for p2/p3/p4/g3/g4/g5 instance families, CPU otherwise.
func DefaultImage(region, instanceType string) string {
	if region == "" {
		region = DefaultRegion
	}
	if isGPUInstance(instanceType) {
		return fmt.Sprintf("763104351884.dkr.ecr.%s.amazonaws.com/pytorch-training:2.0.1-gpu-py310-cu118-ubuntu20.04-sagemaker", region)
	}
	return fmt.Sprintf("763104351884.dkr.ecr.%s.amazonaws.com/pytorch-training:2.0.1-cpu-py310-ubuntu20.04-sagemaker", region)
}

func isGPUInstance(t string) bool {
	for _, f := range []string{"p2", "p3", "p4", "g3", "g4", "g5"} {
		if strings.Contains(t, f) {
			return true
		}
	}
	return false
}

var (
	envKeyRE   = lazyre.New(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	instTypeRE = lazyre.New(`^ml\.[a-z0-9][a-z0-9-]*\.[a-z0-9]+$`)
	s3URIRE    = lazyre.New(`^(s3|https)://[^/]+/?.*$`)
	channelRE  = lazyre.New(`^[A-Za-z0-9.\-_]{1,64}$`)
)

// BuildCreateInput turns a spec into a CreateTrainingJob request. It always
// sets ResourceConfig and StoppingCondition (the API would let either be
// omitted) and checks the limits AWS enforces, so a bad spec fails here with
// a clear message instead of at AWS.
func BuildCreateInput(spec ClusterSpec) (*CreateTrainingJobInput, error) {
	name := spec.JobName
	if name == "" {
		name = JobName(spec.Cluster, spec.Generation)
	}
	if err := ValidJobName(name); err != nil {
		return nil, err
	}
	if !ValidRoleARN(spec.RoleArn) {
		return nil, fmt.Errorf("role %q is not a resolved IAM role ARN", spec.RoleArn)
	}
	est := spec.Estimator
	// Estimator values fill what the spec leaves unset; both set and
	// different is a conflict the user must settle.
	pickStr := func(field, specV, estV, def string) (string, error) {
		switch {
		case specV != "" && estV != "" && specV != estV:
			return "", fmt.Errorf("%s: cluster says %q, estimator says %q", field, specV, estV)
		case specV != "":
			return specV, nil
		case estV != "":
			return estV, nil
		}
		return def, nil
	}
	pickInt := func(field string, specV, estV, def int32) (int32, error) {
		switch {
		case specV != 0 && estV != 0 && specV != estV:
			return 0, fmt.Errorf("%s: cluster says %d, estimator says %d", field, specV, estV)
		case specV != 0:
			return specV, nil
		case estV != 0:
			return estV, nil
		}
		return def, nil
	}
	var e Estimator
	if est != nil {
		e = *est
	}
	instType, err := pickStr("instance_type", spec.InstanceType, e.InstanceType, DefaultInstanceType)
	if err != nil {
		return nil, err
	}
	if !instTypeRE.MatchString(instType) {
		return nil, fmt.Errorf("instance type %q is not a SageMaker instance type (ml.<family>.<size>, e.g. %s)", instType, DefaultInstanceType)
	}
	count, err := pickInt("instance_count", spec.InstanceCount, e.InstanceCount, 1)
	if err != nil {
		return nil, err
	}
	if count < 1 {
		return nil, fmt.Errorf("instance count %d must be at least 1", count)
	}
	volume, err := pickInt("volume_size", spec.VolumeSizeGB, e.VolumeSize, DefaultVolumeSizeGB)
	if err != nil {
		return nil, err
	}
	image, err := pickStr("image_uri", spec.ImageURI, e.ImageURI, DefaultImage(spec.Region, instType))
	if err != nil {
		return nil, err
	}
	maxRun := int32(spec.MaxRuntime / time.Second)
	if maxRun, err = pickInt("max_run", maxRun, e.MaxRun, int32(DefaultMaxRuntime/time.Second)); err != nil {
		return nil, err
	}
	if maxRun < 1 || maxRun > 28*24*3600 {
		return nil, fmt.Errorf("max runtime %ds must be between 1s and 28 days", maxRun)
	}
	output, err := pickStr("output_path", spec.OutputPath, e.OutputPath, defaultOutputPath(spec))
	if err != nil {
		return nil, err
	}
	if !s3URIRE.MatchString(output) {
		return nil, fmt.Errorf("output path %q must be an s3:// URI", output)
	}
	if spec.PublicKey != "" {
		if len(spec.PublicKey) > maxEnvValue {
			return nil, fmt.Errorf("SSH public key is %d characters; SageMaker allows %d in an environment value: use an ed25519 key", len(spec.PublicKey), maxEnvValue)
		}
		if strings.ContainsAny(strings.TrimSpace(spec.PublicKey), "\n\r") {
			return nil, errors.New("SSH public key must be a single authorized_keys line")
		}
	}

	env := map[string]string{
		EnvCluster:    spec.Cluster,
		EnvGeneration: strconv.FormatInt(spec.Generation, 10),
	}
	if spec.PublicKey != "" {
		env[EnvSSHPublicKey] = strings.TrimSpace(spec.PublicKey)
	}
	algo := &AlgorithmSpecification{
		TrainingImage:     image,
		TrainingInputMode: "File",
	}
	in := &CreateTrainingJobInput{
		TrainingJobName:        name,
		RoleArn:                spec.RoleArn,
		AlgorithmSpecification: algo,
		OutputDataConfig:       &OutputDataConfig{S3OutputPath: output},
		ResourceConfig: &ResourceConfig{
			InstanceType:   instType,
			InstanceCount:  count,
			VolumeSizeInGB: volume,
		},
		StoppingCondition: &StoppingCondition{MaxRuntimeInSeconds: maxRun},
		RemoteDebugConfig: &RemoteDebugConfig{EnableRemoteDebug: true},
		Environment:       env,
	}

	if est == nil {
		if spec.PublicKey == "" {
			return nil, errors.New("a compute-backend cluster needs an SSH public key to install on its nodes")
		}
		autostop := spec.AutostopMins
		if autostop == 0 {
			autostop = DefaultAutostopMins
		}
		if autostop < -1 {
			return nil, fmt.Errorf("autostop %d minutes: use -1 (run until max runtime) or a positive number", autostop)
		}
		env[EnvKeepAlive] = "1"
		env[EnvAutostopMins] = strconv.Itoa(autostop)
		env[EnvConnectionWaitTime] = strconv.Itoa(int(spec.ConnectionWaitTime / time.Second))
		var refs strings.Builder
		for i, chunk := range chunks(KeepAliveScript, maxEnvValue) {
			k := EnvKeepAliveScriptPrefix + strconv.Itoa(i)
			env[k] = chunk
			refs.WriteString("${" + k + "}")
		}
		algo.ContainerEntrypoint = []string{"/bin/bash", "-c"}
		algo.ContainerArguments = []string{`eval "` + refs.String() + `"`}
	} else {
		if err := applyEstimator(in, est, env, cmp.Or(spec.Region, DefaultRegion)); err != nil {
			return nil, err
		}
	}

	if len(env) > 100 {
		return nil, fmt.Errorf("%d environment variables; SageMaker allows 100", len(env))
	}
	for _, k := range sortedKeys(env) {
		if !envKeyRE.MatchString(k) {
			return nil, fmt.Errorf("environment variable name %q must match [a-zA-Z_][a-zA-Z0-9_]*", k)
		}
		if len(env[k]) > maxEnvValue {
			return nil, fmt.Errorf("environment variable %s is %d characters; SageMaker allows %d", k, len(env[k]), maxEnvValue)
		}
	}

	in.Tags = []Tag{
		{Key: TagCluster, Value: spec.Cluster},
		{Key: TagGeneration, Value: strconv.FormatInt(spec.Generation, 10)},
	}
	for _, k := range sortedKeys(spec.Tags) {
		if strings.HasPrefix(strings.ToLower(k), "aws:") || strings.HasPrefix(k, "rh:") {
			return nil, fmt.Errorf("tag key %q is reserved (aws: and rh: prefixes)", k)
		}
		if len(k) < 1 || len(k) > 128 || len(spec.Tags[k]) > 256 {
			return nil, fmt.Errorf("tag %q: keys are 1-128 characters, values at most 256", k)
		}
		in.Tags = append(in.Tags, Tag{Key: k, Value: spec.Tags[k]})
	}
	if len(in.Tags) > 50 {
		return nil, fmt.Errorf("%d tags; SageMaker allows 50", len(in.Tags))
	}
	return in, nil
}

// defaultOutputPath is the SageMaker SDK's default bucket, in the role's
// account.
func defaultOutputPath(spec ClusterSpec) string {
	account := "unknown"
	if parts := strings.Split(spec.RoleArn, ":"); len(parts) > 4 && parts[4] != "" {
		account = parts[4]
	}
	region := spec.Region
	if region == "" {
		region = DefaultRegion
	}
	return fmt.Sprintf("s3://sagemaker-%s-%s/rh/%s/", region, account, spec.Cluster)
}

func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Estimator is a user's estimator file: the parts of a SageMaker Python SDK
// Estimator that make sense without Python.
type Estimator struct {
	// ImageURI of the training container; default the PyTorch image.
	ImageURI string `json:"image_uri,omitempty"`
	// EntryPoint is a script run by a SageMaker framework container
	// (passed as the sagemaker_program hyperparameter); SourceDir is the
	// s3:// URI of a sourcedir.tar.gz holding it. Exclusive with Command.
	EntryPoint string `json:"entry_point,omitempty"`
	SourceDir  string `json:"source_dir,omitempty"`
	// Command replaces the container's entry point: the first element is
	// the executable, the rest its arguments.
	Command []string `json:"command,omitempty"`
	// HyperParameters and Environment accept any scalar (numbers and
	// booleans become their text); nested values are JSON-encoded.
	HyperParameters map[string]any `json:"hyperparameters,omitempty"`
	Environment     map[string]any `json:"environment,omitempty"`
	// Inputs maps channel name to an s3:// URI.
	Inputs        map[string]string `json:"inputs,omitempty"`
	OutputPath    string            `json:"output_path,omitempty"`
	InstanceType  string            `json:"instance_type,omitempty"`
	InstanceCount int32             `json:"instance_count,omitempty"`
	// MaxRun and MaxWait are seconds; MaxWait needs UseSpot and is at least
	// MaxRun.
	MaxRun     int32 `json:"max_run,omitempty"`
	UseSpot    bool  `json:"use_spot,omitempty"`
	MaxWait    int32 `json:"max_wait,omitempty"`
	VolumeSize int32 `json:"volume_size,omitempty"`
}

// LoadEstimator reads and parses an estimator file.
func LoadEstimator(path string) (*Estimator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading estimator: %w", err)
	}
	e, err := ParseEstimator(b)
	if err != nil {
		return nil, fmt.Errorf("estimator %s: %w", path, err)
	}
	return e, nil
}

// ParseEstimator parses YAML or JSON strictly: an unknown or duplicated
// field is an error naming it, because a misspelt `max_runn` silently
// ignored would launch a job the user did not ask for.
func ParseEstimator(data []byte) (*Estimator, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("estimator is empty")
	}
	var e Estimator
	if err := yaml.UnmarshalStrict(data, &e); err != nil {
		return nil, fmt.Errorf("parsing estimator: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// Validate checks an estimator on its own.
func (e *Estimator) Validate() error {
	if e.EntryPoint != "" && len(e.Command) > 0 {
		return errors.New("estimator: give entry_point or command, not both")
	}
	if e.SourceDir != "" && e.EntryPoint == "" {
		return errors.New("estimator: source_dir needs entry_point")
	}
	if e.SourceDir != "" && !strings.HasPrefix(e.SourceDir, "s3://") {
		return fmt.Errorf("estimator: source_dir %q must be an s3:// URI of a sourcedir.tar.gz (local directories are not uploaded)", e.SourceDir)
	}
	if e.EntryPoint == "" && len(e.Command) == 0 && e.ImageURI == "" {
		return errors.New("estimator: needs entry_point, command, or an image_uri whose own entry point trains")
	}
	for _, a := range e.Command {
		if a == "" || len(a) > 256 {
			return fmt.Errorf("estimator: command elements must be 1-256 characters, got %d", len(a))
		}
	}
	if len(e.Command) > 101 {
		return errors.New("estimator: command has more than 100 arguments")
	}
	for _, name := range sortedKeys(e.Inputs) {
		if !channelRE.MatchString(name) {
			return fmt.Errorf("estimator: input channel name %q must match [A-Za-z0-9.-_]{1,64}", name)
		}
		if !strings.HasPrefix(e.Inputs[name], "s3://") {
			return fmt.Errorf("estimator: input %q: %q is not an s3:// URI", name, e.Inputs[name])
		}
	}
	if e.OutputPath != "" && !strings.HasPrefix(e.OutputPath, "s3://") {
		return fmt.Errorf("estimator: output_path %q is not an s3:// URI", e.OutputPath)
	}
	if e.InstanceCount < 0 || e.MaxRun < 0 || e.MaxWait < 0 || e.VolumeSize < 0 {
		return errors.New("estimator: instance_count, max_run, max_wait and volume_size cannot be negative")
	}
	if e.MaxWait != 0 && !e.UseSpot {
		return errors.New("estimator: max_wait needs use_spot: true")
	}
	return nil
}

func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	default:
		b, err := json.Marshal(x)
		return string(b), err
	}
}

// applyEstimator fills the estimator-specific parts of a request.
func applyEstimator(in *CreateTrainingJobInput, e *Estimator, env map[string]string, region string) error {
	for _, k := range sortedKeys(e.Environment) {
		if strings.HasPrefix(k, "RH_") {
			return fmt.Errorf("estimator: environment variable %s: the RH_ prefix is reserved", k)
		}
		v, err := scalarString(e.Environment[k])
		if err != nil {
			return fmt.Errorf("estimator: environment %s: %w", k, err)
		}
		env[k] = v
	}
	hp := map[string]string{}
	for _, k := range sortedKeys(e.HyperParameters) {
		v, err := scalarString(e.HyperParameters[k])
		if err != nil {
			return fmt.Errorf("estimator: hyperparameter %s: %w", k, err)
		}
		hp[k] = v
	}
	if e.EntryPoint != "" {
		// SageMaker framework containers read these JSON-encoded, as the
		// Python SDK writes them.
		hp["sagemaker_program"] = strconv.Quote(e.EntryPoint)
		if e.SourceDir != "" {
			hp["sagemaker_submit_directory"] = strconv.Quote(e.SourceDir)
		}
		hp["sagemaker_region"] = strconv.Quote(region)
	}
	if len(hp) > 100 {
		return fmt.Errorf("estimator: %d hyperparameters; SageMaker allows 100", len(hp))
	}
	if len(hp) > 0 {
		in.HyperParameters = hp
	}
	if len(e.Command) > 0 {
		in.AlgorithmSpecification.ContainerEntrypoint = e.Command[:1]
		if len(e.Command) > 1 {
			in.AlgorithmSpecification.ContainerArguments = e.Command[1:]
		}
	}
	for _, name := range sortedKeys(e.Inputs) {
		in.InputDataConfig = append(in.InputDataConfig, Channel{
			ChannelName: name,
			DataSource: DataSource{S3DataSource: &S3DataSource{
				S3DataType:             "S3Prefix",
				S3Uri:                  e.Inputs[name],
				S3DataDistributionType: "FullyReplicated",
			}},
		})
	}
	if e.UseSpot {
		maxRun := in.StoppingCondition.MaxRuntimeInSeconds
		wait := e.MaxWait
		if wait == 0 {
			wait = maxRun
		}
		if wait < maxRun {
			return fmt.Errorf("estimator: max_wait %d must be at least max_run %d", wait, maxRun)
		}
		in.EnableManagedSpotTraining = true
		in.StoppingCondition.MaxWaitTimeInSeconds = wait
	}
	return nil
}
