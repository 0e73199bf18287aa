package rh

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/rhq/rh/internal/lazyre"
)

// ReservedNames are refused as cluster names, as Runhouse refuses them: they
// name file systems and protocols in Runhouse's own paths.
var ReservedNames = []string{"file", "s3", "gs", "azure", "here", "ssh", "sftp"}

// Providers are the values --provider accepts; "cheapest" lets SkyPilot choose.
var Providers = []string{"aws", "gcp", "azure", "lambda", "kubernetes", "cheapest"}

// Defaults filled in by Normalize.
const (
	DefaultSSHPort               = 22
	DefaultOnDemandInstanceType  = "CPU:2+"
	DefaultSageMakerInstanceType = "ml.m5.large"
	// DefaultSageMakerAutostopMins is a SageMaker cluster's autostop when
	// none is given (other kinds default to never).
	DefaultSageMakerAutostopMins = 30
	DefaultProvider              = "cheapest"
	MaxNodes                     = 256
)

// Counted repetitions ({1,512}) compile into large programs at start-up, which
// every rhcli command would pay for; lengths are checked apart instead.
var (
	nameRe         = lazyre.New(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	hostLabelRe    = lazyre.New(`^[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?$`)
	userRe         = lazyre.New(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)
	instanceNameRe = lazyre.New(`^[A-Za-z][A-Za-z0-9_-]*([.][A-Za-z0-9_-]+)*$`)
	acceleratorRe  = lazyre.New(`^[A-Za-z][A-Za-z0-9_-]*(:([1-9][0-9]{0,3}|0?\.[0-9]+))?$`)
	cpuSpecRe      = lazyre.New(`^CPU:[1-9][0-9]{0,4}\+?$`)
	regionRe       = lazyre.New(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	memoryRe       = lazyre.New(`^[0-9]+(\.[0-9]+)?\+?$`)
	mlInstanceRe   = lazyre.New(`^ml\.[a-z0-9]+\.[a-z0-9]+$`)
	roleARNRe      = lazyre.New(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`)
	roleNameRe     = lazyre.New(`^[A-Za-z0-9+=,.@_-]+$`)
	profileRe      = lazyre.New(`^[A-Za-z0-9_.@+-]+$`)
	jobNameRe      = lazyre.New(`^[a-zA-Z0-9](-*[a-zA-Z0-9])*$`)
	imageRe        = lazyre.New(`^\S+$`)
)

// ValidateName checks a cluster name: a lowercase DNS label, not reserved.
func ValidateName(name string) error {
	switch {
	case name == "":
		return Invalid("name", "must not be empty")
	case len(name) > 63:
		return Invalid("name", "%q is %d characters; the limit is 63", name, len(name))
	case !nameRe.MatchString(name):
		return Invalid("name", "%q must be lowercase letters, digits and '-', starting and ending with a letter or digit", name)
	case slices.Contains(ReservedNames, name):
		return Invalid("name", "%q is reserved (reserved names: %s)", name, strings.Join(ReservedNames, ", "))
	}
	return nil
}

// ParseKind accepts a kind as users write it.
func ParseKind(s string) (Kind, error) {
	k := Kind(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(Kinds, k) {
		return k, nil
	}
	return "", Invalid("kind", "%q is not a kind (byo, ondemand, sagemaker)", s)
}

// InferKind picks the kind from the sections and fields given, as Runhouse
// does: IPs mean byo; a role or estimator (or an ml.* instance) means
// sagemaker; an instance type or provider means ondemand.
func (s *Spec) InferKind() {
	if s.Kind != "" {
		return
	}
	switch {
	case s.BYO != nil && len(s.BYO.IPs) > 0:
		s.Kind = KindBYO
	case s.SageMaker != nil:
		s.Kind = KindSageMaker
	case s.OnDemand != nil && strings.HasPrefix(s.OnDemand.InstanceType, "ml."):
		// An ml.* instance is SageMaker's, whichever section it came in.
		s.Kind = KindSageMaker
		s.SageMaker = &SageMakerSpec{InstanceType: s.OnDemand.InstanceType, NumInstances: s.OnDemand.NumInstances}
		s.OnDemand = nil
	case s.OnDemand != nil:
		s.Kind = KindOnDemand
	case s.BYO != nil:
		s.Kind = KindBYO
	}
}

// Normalize infers the kind and fills in defaults, so that equal requests give
// equal stored specs.
func (s *Spec) Normalize() {
	s.InferKind()
	if s.AutostopMins == nil {
		// A SageMaker cluster bills until its job ends: one nobody stops
		// must not run for the job's whole maximum runtime.
		if s.Kind == KindSageMaker {
			s.AutostopMins = new(DefaultSageMakerAutostopMins)
		} else {
			s.AutostopMins = new(-1)
		}
	}
	switch s.Kind {
	case KindBYO:
		if s.BYO == nil {
			s.BYO = &BYOSpec{}
		}
		if s.BYO.SSHPort == 0 {
			s.BYO.SSHPort = DefaultSSHPort
		}
		if s.BYO.SSHUser == "" {
			s.BYO.SSHUser = "root"
		}
		for i, ip := range s.BYO.IPs {
			s.BYO.IPs[i] = strings.TrimSpace(ip)
		}
	case KindOnDemand:
		if s.OnDemand == nil {
			s.OnDemand = &OnDemandSpec{}
		}
		if s.OnDemand.InstanceType == "" {
			s.OnDemand.InstanceType = DefaultOnDemandInstanceType
		}
		if s.OnDemand.NumInstances == 0 {
			s.OnDemand.NumInstances = 1
		}
		if s.OnDemand.Provider == "" {
			s.OnDemand.Provider = DefaultProvider
		}
		s.OnDemand.Provider = strings.ToLower(s.OnDemand.Provider)
	case KindSageMaker:
		if s.SageMaker == nil {
			s.SageMaker = &SageMakerSpec{}
		}
		if s.SageMaker.InstanceType == "" {
			s.SageMaker.InstanceType = DefaultSageMakerInstanceType
		}
		if s.SageMaker.NumInstances == 0 {
			s.SageMaker.NumInstances = 1
		}
	}
}

// Validate checks a normalized spec completely and reports the first broken
// rule, naming the field as it appears in cluster.yaml.
func (s *Spec) Validate() error {
	if s.Kind == "" {
		return Invalid("kind", "cannot be inferred: give ips (byo), instance_type or provider (ondemand), or role/estimator (sagemaker), or set kind")
	}
	if _, err := ParseKind(string(s.Kind)); err != nil {
		return err
	}
	if a := s.Autostop(); a < -1 {
		return Invalid("autostop_mins", "%d is below -1 (-1 means never)", a)
	}
	sections := map[Kind]bool{KindBYO: s.BYO != nil, KindOnDemand: s.OnDemand != nil, KindSageMaker: s.SageMaker != nil}
	for k, set := range sections {
		if set && k != s.Kind {
			return Invalid(string(k), "is set, but the cluster's kind is %s", s.Kind)
		}
	}
	switch s.Kind {
	case KindBYO:
		return s.BYO.validate(s.Autostop())
	case KindOnDemand:
		return s.OnDemand.validate()
	case KindSageMaker:
		return s.SageMaker.validate()
	}
	return nil
}

func (b *BYOSpec) validate(autostop int) error {
	if b == nil || len(b.IPs) == 0 {
		return Invalid("byo.ips", "must list at least one address (the first is the head node)")
	}
	if len(b.IPs) > MaxNodes {
		return Invalid("byo.ips", "lists %d addresses; the limit is %d", len(b.IPs), MaxNodes)
	}
	seen := map[string]bool{}
	for i, ip := range b.IPs {
		field := fmt.Sprintf("byo.ips[%d]", i)
		if err := ValidateHost(ip); err != nil {
			return Invalid(field, "%v", err)
		}
		if seen[ip] {
			return Invalid(field, "%q is listed twice", ip)
		}
		seen[ip] = true
	}
	if err := validatePort("byo.ssh_port", b.SSHPort); err != nil {
		return err
	}
	if !userRe.MatchString(b.SSHUser) {
		return Invalid("byo.ssh_user", "%q is not a valid user name", b.SSHUser)
	}
	if strings.ContainsAny(b.ProxyCommand, "\n\r\x00") {
		return Invalid("byo.proxy_command", "must be one line")
	}
	if b.JumpHost != "" {
		if err := validateJumpHost(b.JumpHost); err != nil {
			return err
		}
	}
	if autostop != -1 {
		return Invalid("autostop_mins", "must be -1 for byo clusters: rh never stops machines it does not own")
	}
	return nil
}

// ValidateHost accepts an IPv4 or IPv6 address or an RFC 1123 host name.
func ValidateHost(h string) error {
	if h == "" {
		return fmt.Errorf("address must not be empty")
	}
	if net.ParseIP(strings.Trim(h, "[]")) != nil {
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", h)
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	allDigits := true
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || !hostLabelRe.MatchString(l) {
			return fmt.Errorf("%q is neither an IP address nor a host name", h)
		}
		if _, err := strconv.Atoi(l); err != nil {
			allDigits = false
		}
	}
	if allDigits {
		return fmt.Errorf("%q is not a valid IP address", h)
	}
	return nil
}

func validatePort(field string, p int) error {
	if p < 1 || p > 65535 {
		return Invalid(field, "%d is not a port (1-65535)", p)
	}
	return nil
}

func validateJumpHost(j string) error {
	hostPart := j
	if at := strings.LastIndex(j, "@"); at >= 0 {
		if !userRe.MatchString(j[:at]) {
			return Invalid("byo.jump_host", "%q has an invalid user name", j)
		}
		hostPart = j[at+1:]
	}
	host, port, err := net.SplitHostPort(hostPart)
	if err != nil {
		host, port = hostPart, ""
	}
	if err := ValidateHost(host); err != nil {
		return Invalid("byo.jump_host", "%v", err)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil {
			return Invalid("byo.jump_host", "port %q is not a number", port)
		}
		return validatePort("byo.jump_host", n)
	}
	return nil
}

// InstanceTypeForm tells which of the three forms an on-demand instance type uses.
type InstanceTypeForm int

const (
	FormInvalid     InstanceTypeForm = iota
	FormInstance                     // m5.xlarge
	FormAccelerator                  // A100:4
	FormCPU                          // CPU:2+
)

// ParseInstanceType classifies an on-demand instance type.
func ParseInstanceType(t string) InstanceTypeForm {
	switch {
	case cpuSpecRe.MatchString(t):
		return FormCPU
	case strings.Contains(t, ":") && acceleratorRe.MatchString(t):
		return FormAccelerator
	case instanceNameRe.MatchString(t) && len(t) <= 64:
		return FormInstance
	}
	return FormInvalid
}

func (o *OnDemandSpec) validate() error {
	if strings.HasPrefix(o.InstanceType, "ml.") {
		return Invalid("ondemand.instance_type", "%q is a SageMaker instance type; use kind sagemaker", o.InstanceType)
	}
	if ParseInstanceType(o.InstanceType) == FormInvalid {
		return Invalid("ondemand.instance_type", "%q is not an instance type (m5.xlarge), accelerator spec (A100:4) or CPU spec (CPU:2+)", o.InstanceType)
	}
	if o.NumInstances < 1 || o.NumInstances > MaxNodes {
		return Invalid("ondemand.num_instances", "%d is outside 1-%d", o.NumInstances, MaxNodes)
	}
	if !slices.Contains(Providers, o.Provider) {
		return Invalid("ondemand.provider", "%q is not one of %s", o.Provider, strings.Join(Providers, ", "))
	}
	if o.Region != "" {
		if !regionRe.MatchString(o.Region) {
			return Invalid("ondemand.region", "%q is not a region name", o.Region)
		}
		if o.Provider == "cheapest" {
			return Invalid("ondemand.region", "needs a provider: a region belongs to one cloud")
		}
	}
	if o.ImageID != "" && (!imageRe.MatchString(o.ImageID) || len(o.ImageID) > 512) {
		return Invalid("ondemand.image_id", "must be one word of at most 512 characters")
	}
	if o.Memory != "" && !memoryRe.MatchString(o.Memory) {
		return Invalid("ondemand.memory", "%q is not a size in GiB (32 or 32+)", o.Memory)
	}
	if o.DiskSize < 0 || o.DiskSize > 65536 {
		return Invalid("ondemand.disk_size", "%d is outside 0-65536 GiB", o.DiskSize)
	}
	for i, p := range o.OpenPorts {
		if err := validatePort(fmt.Sprintf("ondemand.open_ports[%d]", i), p); err != nil {
			return err
		}
	}
	return nil
}

// closest suggests the nearest of known to s (a typo away), or nothing.
func closest(s string, known []string) string {
	best, bestD := "", 4 // more than three edits away is no suggestion
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (m *SageMakerSpec) validate() error {
	validRole := (roleARNRe.MatchString(m.Role) && len(m.Role) <= 600) || (roleNameRe.MatchString(m.Role) && len(m.Role) <= 64)
	if m.Role != "" && !validRole {
		if strings.HasPrefix(m.Role, "arn:") {
			return Invalid("sagemaker.role", "%q is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)", m.Role)
		}
		return Invalid("sagemaker.role", "%q is not an IAM role name or ARN", m.Role)
	}
	if m.Profile != "" && (!profileRe.MatchString(m.Profile) || len(m.Profile) > 128) {
		return Invalid("sagemaker.profile", "%q is not an AWS profile name", m.Profile)
	}
	if m.Region != "" && !regionRe.MatchString(m.Region) {
		return Invalid("sagemaker.region", "%q is not a region name", m.Region)
	}
	if !mlInstanceRe.MatchString(m.InstanceType) {
		return Invalid("sagemaker.instance_type", "%q is not a SageMaker instance type (ml.m5.large)", m.InstanceType)
	}
	if _, known := slices.BinarySearch(SageMakerTrainingInstanceTypes, m.InstanceType); !known {
		return Invalid("sagemaker.instance_type", "%q is not a SageMaker training instance type%s", m.InstanceType, closest(m.InstanceType, SageMakerTrainingInstanceTypes))
	}
	if m.NumInstances < 1 || m.NumInstances > 100 {
		return Invalid("sagemaker.num_instances", "%d is outside 1-100", m.NumInstances)
	}
	if m.ImageURI != "" && (!imageRe.MatchString(m.ImageURI) || len(m.ImageURI) > 512) {
		return Invalid("sagemaker.image_uri", "must be one word of at most 512 characters")
	}
	if m.ConnectionWaitTime < 0 || m.ConnectionWaitTime > 86400 {
		return Invalid("sagemaker.connection_wait_time", "%d is outside 0-86400 seconds", m.ConnectionWaitTime)
	}
	if m.JobName != "" && (!jobNameRe.MatchString(m.JobName) || len(m.JobName) > 63) {
		return Invalid("sagemaker.job_name", "%q must be 1-63 letters, digits and '-', starting with a letter or digit", m.JobName)
	}
	if len(m.Estimator) > 64<<10 {
		return Invalid("sagemaker.estimator", "is %d bytes; the limit is 64 KiB", len(m.Estimator))
	}
	return nil
}
