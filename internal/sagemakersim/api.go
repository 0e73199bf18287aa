package sagemakersim

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rhq/rh/internal/lazyre"
)

// Wire shapes: only the members rh sends or reads; unknown members are
// ignored, as a lenient service would.

type algorithmSpecification struct {
	TrainingImage       string   `json:"TrainingImage,omitempty"`
	AlgorithmName       string   `json:"AlgorithmName,omitempty"`
	TrainingInputMode   string   `json:"TrainingInputMode,omitempty"`
	ContainerEntrypoint []string `json:"ContainerEntrypoint,omitempty"`
	ContainerArguments  []string `json:"ContainerArguments,omitempty"`
}

type resourceConfig struct {
	InstanceType             string `json:"InstanceType,omitempty"`
	InstanceCount            *int32 `json:"InstanceCount,omitempty"`
	VolumeSizeInGB           *int32 `json:"VolumeSizeInGB,omitempty"`
	KeepAlivePeriodInSeconds *int32 `json:"KeepAlivePeriodInSeconds,omitempty"`
}

type stoppingCondition struct {
	MaxRuntimeInSeconds     *int32 `json:"MaxRuntimeInSeconds,omitempty"`
	MaxWaitTimeInSeconds    *int32 `json:"MaxWaitTimeInSeconds,omitempty"`
	MaxPendingTimeInSeconds *int32 `json:"MaxPendingTimeInSeconds,omitempty"`
}

type outputDataConfig struct {
	S3OutputPath string `json:"S3OutputPath,omitempty"`
	KmsKeyId     string `json:"KmsKeyId,omitempty"`
}

type s3DataSource struct {
	S3DataType             string `json:"S3DataType,omitempty"`
	S3Uri                  string `json:"S3Uri,omitempty"`
	S3DataDistributionType string `json:"S3DataDistributionType,omitempty"`
}

type dataSource struct {
	S3DataSource *s3DataSource `json:"S3DataSource,omitempty"`
}

type channel struct {
	ChannelName     string      `json:"ChannelName"`
	DataSource      *dataSource `json:"DataSource,omitempty"`
	ContentType     string      `json:"ContentType,omitempty"`
	InputMode       string      `json:"InputMode,omitempty"`
	CompressionType string      `json:"CompressionType,omitempty"`
}

type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type remoteDebugConfig struct {
	EnableRemoteDebug *bool `json:"EnableRemoteDebug,omitempty"`
}

type createRequest struct {
	TrainingJobName           string                  `json:"TrainingJobName"`
	RoleArn                   string                  `json:"RoleArn"`
	AlgorithmSpecification    *algorithmSpecification `json:"AlgorithmSpecification,omitempty"`
	ResourceConfig            *resourceConfig         `json:"ResourceConfig,omitempty"`
	StoppingCondition         *stoppingCondition      `json:"StoppingCondition,omitempty"`
	OutputDataConfig          *outputDataConfig       `json:"OutputDataConfig,omitempty"`
	InputDataConfig           []channel               `json:"InputDataConfig,omitempty"`
	HyperParameters           map[string]string       `json:"HyperParameters,omitempty"`
	Environment               map[string]string       `json:"Environment,omitempty"`
	Tags                      []tag                   `json:"Tags,omitempty"`
	EnableManagedSpotTraining *bool                   `json:"EnableManagedSpotTraining,omitempty"`
	RemoteDebugConfig         *remoteDebugConfig      `json:"RemoteDebugConfig,omitempty"`
}

// awsTime is a timestamp in the JSON protocols' default format: epoch seconds
// as a number, with millisecond fractions.
type awsTime time.Time

func (t awsTime) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)), nil
}

func (t *awsTime) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("timestamp %s: %w", b, err)
	}
	*t = awsTime(time.UnixMilli(int64(f * 1000)))
	return nil
}

func timePtr(t time.Time) *awsTime {
	if t.IsZero() {
		return nil
	}
	a := awsTime(t)
	return &a
}

type transitionWire struct {
	Status        string   `json:"Status"`
	StartTime     *awsTime `json:"StartTime"`
	EndTime       *awsTime `json:"EndTime,omitempty"`
	StatusMessage string   `json:"StatusMessage,omitempty"`
}

type warmPoolStatus struct {
	Status                                string `json:"Status"`
	ResourceRetainedBillableTimeInSeconds *int32 `json:"ResourceRetainedBillableTimeInSeconds,omitempty"`
}

type describeResponse struct {
	TrainingJobName            string                  `json:"TrainingJobName"`
	TrainingJobArn             string                  `json:"TrainingJobArn"`
	TrainingJobStatus          string                  `json:"TrainingJobStatus"`
	SecondaryStatus            string                  `json:"SecondaryStatus"`
	FailureReason              string                  `json:"FailureReason,omitempty"`
	RoleArn                    string                  `json:"RoleArn,omitempty"`
	AlgorithmSpecification     *algorithmSpecification `json:"AlgorithmSpecification,omitempty"`
	ResourceConfig             *resourceConfig         `json:"ResourceConfig,omitempty"`
	StoppingCondition          *stoppingCondition      `json:"StoppingCondition,omitempty"`
	OutputDataConfig           *outputDataConfig       `json:"OutputDataConfig,omitempty"`
	InputDataConfig            []channel               `json:"InputDataConfig,omitempty"`
	HyperParameters            map[string]string       `json:"HyperParameters,omitempty"`
	Environment                map[string]string       `json:"Environment,omitempty"`
	EnableManagedSpotTraining  *bool                   `json:"EnableManagedSpotTraining,omitempty"`
	RemoteDebugConfig          *remoteDebugConfig      `json:"RemoteDebugConfig,omitempty"`
	ModelArtifacts             *modelArtifacts         `json:"ModelArtifacts,omitempty"`
	CreationTime               *awsTime                `json:"CreationTime"`
	LastModifiedTime           *awsTime                `json:"LastModifiedTime,omitempty"`
	TrainingStartTime          *awsTime                `json:"TrainingStartTime,omitempty"`
	TrainingEndTime            *awsTime                `json:"TrainingEndTime,omitempty"`
	TrainingTimeInSeconds      *int32                  `json:"TrainingTimeInSeconds,omitempty"`
	BillableTimeInSeconds      *int32                  `json:"BillableTimeInSeconds,omitempty"`
	SecondaryStatusTransitions []transitionWire        `json:"SecondaryStatusTransitions,omitempty"`
	WarmPoolStatus             *warmPoolStatus         `json:"WarmPoolStatus,omitempty"`
}

type modelArtifacts struct {
	S3ModelArtifacts string `json:"S3ModelArtifacts"`
}

type summary struct {
	TrainingJobName   string          `json:"TrainingJobName"`
	TrainingJobArn    string          `json:"TrainingJobArn"`
	TrainingJobStatus string          `json:"TrainingJobStatus"`
	SecondaryStatus   string          `json:"SecondaryStatus,omitempty"`
	CreationTime      *awsTime        `json:"CreationTime"`
	LastModifiedTime  *awsTime        `json:"LastModifiedTime,omitempty"`
	TrainingEndTime   *awsTime        `json:"TrainingEndTime,omitempty"`
	WarmPoolStatus    *warmPoolStatus `json:"WarmPoolStatus,omitempty"`
}

type listRequest struct {
	MaxResults         *int32   `json:"MaxResults,omitempty"`
	NextToken          string   `json:"NextToken,omitempty"`
	NameContains       string   `json:"NameContains,omitempty"`
	StatusEquals       string   `json:"StatusEquals,omitempty"`
	SortBy             string   `json:"SortBy,omitempty"`
	SortOrder          string   `json:"SortOrder,omitempty"`
	CreationTimeAfter  *awsTime `json:"CreationTimeAfter,omitempty"`
	CreationTimeBefore *awsTime `json:"CreationTimeBefore,omitempty"`
}

// apiError is an error answer of the SageMaker API.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func validationErr(format string, args ...any) *apiError {
	return &apiError{400, "ValidationException", fmt.Sprintf(format, args...)}
}

// constraintErr phrases a validation failure the way AWS's model validation
// does.
func constraintErr(value, member, constraint string) *apiError {
	return validationErr("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", value, member, constraint)
}

var notFound = &apiError{400, "ValidationException", "Requested resource not found."}

var (
	jobNameRE  = lazyre.New(`^[a-zA-Z0-9](-*[a-zA-Z0-9])*$`) // length checked apart
	roleArnRE  = lazyre.New(`^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)
	envKeyRE   = lazyre.New(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	instTypeRE = lazyre.New(`^ml\.[a-z0-9]+[a-z0-9-]*\.[a-z0-9]+$`)
	s3URIRE    = lazyre.New(`^(https|s3)://([^/]+)/?(.*)$`)
	channelRE  = lazyre.New(`^[A-Za-z0-9\.\-_]+$`)
)

// validateCreate applies the service-side rules that matter for rh. It is
// deliberately stricter than AWS in one way: ResourceConfig and
// StoppingCondition are required, because the worker must always send them.
func validateCreate(r *createRequest) *apiError {
	if !jobNameRE.MatchString(r.TrainingJobName) || len(r.TrainingJobName) > 63 {
		return constraintErr(r.TrainingJobName, "trainingJobName", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
	}
	if len(r.RoleArn) < 20 || len(r.RoleArn) > 2048 || !roleArnRE.MatchString(r.RoleArn) {
		return constraintErr(r.RoleArn, "roleArn", `Member must satisfy regular expression pattern: ^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)
	}
	as := r.AlgorithmSpecification
	if as == nil {
		return validationErr("AlgorithmSpecification is required.")
	}
	if as.TrainingImage == "" && as.AlgorithmName == "" {
		return validationErr("Either TrainingImage or AlgorithmName must be specified.")
	}
	switch as.TrainingInputMode {
	case "File", "Pipe", "FastFile":
	default:
		return constraintErr(as.TrainingInputMode, "algorithmSpecification.trainingInputMode", "Member must satisfy enum value set: [Pipe, File, FastFile]")
	}
	for _, l := range []struct {
		name string
		v    []string
	}{{"containerEntrypoint", as.ContainerEntrypoint}, {"containerArguments", as.ContainerArguments}} {
		if len(l.v) > 100 {
			return constraintErr(fmt.Sprint(len(l.v)), "algorithmSpecification."+l.name, "Member must have length less than or equal to 100")
		}
		for _, a := range l.v {
			if len(a) < 1 || len(a) > 256 {
				return constraintErr(a, "algorithmSpecification."+l.name+".member", "Member must have length less than or equal to 256")
			}
		}
	}
	rc := r.ResourceConfig
	if rc == nil {
		return validationErr("ResourceConfig is required.")
	}
	if !instTypeRE.MatchString(rc.InstanceType) {
		return constraintErr(rc.InstanceType, "resourceConfig.instanceType", "Member must satisfy enum value set of ml.* instance types")
	}
	if rc.InstanceCount == nil || *rc.InstanceCount < 1 {
		return constraintErr(fmt.Sprint(deref(rc.InstanceCount)), "resourceConfig.instanceCount", "Member must have value greater than or equal to 1")
	}
	if rc.VolumeSizeInGB == nil || *rc.VolumeSizeInGB < 1 {
		return constraintErr(fmt.Sprint(deref(rc.VolumeSizeInGB)), "resourceConfig.volumeSizeInGB", "Member must have value greater than or equal to 1")
	}
	if k := rc.KeepAlivePeriodInSeconds; k != nil && (*k < 0 || *k > 21600) {
		return constraintErr(fmt.Sprint(*k), "resourceConfig.keepAlivePeriodInSeconds", "Member must have value less than or equal to 21600")
	}
	sc := r.StoppingCondition
	if sc == nil || sc.MaxRuntimeInSeconds == nil {
		return validationErr("StoppingCondition.MaxRuntimeInSeconds is required.")
	}
	if m := *sc.MaxRuntimeInSeconds; m < 1 || m > 28*24*3600 {
		return constraintErr(fmt.Sprint(m), "stoppingCondition.maxRuntimeInSeconds", "Member must have value less than or equal to 2419200")
	}
	spot := r.EnableManagedSpotTraining != nil && *r.EnableManagedSpotTraining
	switch {
	case spot && sc.MaxWaitTimeInSeconds == nil:
		return validationErr("MaxWaitTimeInSeconds must be specified for managed spot training.")
	case !spot && sc.MaxWaitTimeInSeconds != nil:
		return validationErr("MaxWaitTimeInSeconds can only be specified for managed spot training.")
	case spot && *sc.MaxWaitTimeInSeconds < *sc.MaxRuntimeInSeconds:
		return validationErr("Invalid MaxWaitTimeInSeconds. It must be greater than or equal to MaxRuntimeInSeconds.")
	}
	if r.OutputDataConfig == nil || !s3URIRE.MatchString(r.OutputDataConfig.S3OutputPath) {
		var v string
		if r.OutputDataConfig != nil {
			v = r.OutputDataConfig.S3OutputPath
		}
		return constraintErr(v, "outputDataConfig.s3OutputPath", "Member must satisfy regular expression pattern: ^(https|s3)://([^/]+)/?(.*)$")
	}
	seen := map[string]bool{}
	for _, c := range r.InputDataConfig {
		if !channelRE.MatchString(c.ChannelName) || len(c.ChannelName) > 64 {
			return constraintErr(c.ChannelName, "inputDataConfig.member.channelName", "Member must satisfy regular expression pattern: [A-Za-z0-9\\.\\-_]+")
		}
		if seen[c.ChannelName] {
			return validationErr("Channel names must be unique: %s", c.ChannelName)
		}
		seen[c.ChannelName] = true
		if c.DataSource == nil || c.DataSource.S3DataSource == nil || !s3URIRE.MatchString(c.DataSource.S3DataSource.S3Uri) {
			return validationErr("Channel %s: DataSource.S3DataSource.S3Uri must be an s3:// or https:// URI.", c.ChannelName)
		}
	}
	if len(r.HyperParameters) > 100 {
		return constraintErr(fmt.Sprint(len(r.HyperParameters)), "hyperParameters", "Member must have length less than or equal to 100")
	}
	for k, v := range r.HyperParameters {
		if len(k) > 256 || len(v) > 2500 {
			return constraintErr(k, "hyperParameters", "Map value must have length less than or equal to 2500")
		}
	}
	if len(r.Environment) > 100 {
		return constraintErr(fmt.Sprint(len(r.Environment)), "environment", "Member must have length less than or equal to 100")
	}
	for _, k := range sortedKeys(r.Environment) {
		v := r.Environment[k]
		if len(k) > 512 || !envKeyRE.MatchString(k) {
			return constraintErr(k, "environment", "Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z_][a-zA-Z0-9_]*]")
		}
		if len(v) > 512 {
			return constraintErr(v, "environment", "Map value must satisfy constraint: [Member must have length less than or equal to 512]")
		}
	}
	if len(r.Tags) > 50 {
		return constraintErr(fmt.Sprint(len(r.Tags)), "tags", "Member must have length less than or equal to 50")
	}
	for _, t := range r.Tags {
		if len(t.Key) < 1 || len(t.Key) > 128 || len(t.Value) > 256 {
			return constraintErr(t.Key, "tags.member.key", "Member must have length less than or equal to 128")
		}
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return validationErr("Tag keys starting with 'aws:' are reserved for system use: %s", t.Key)
		}
	}
	return nil
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// serveSageMaker handles one JSON 1.1 call.
func (s *Server) serveSageMaker(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeJSONError(w, http.StatusNotFound, "UnknownOperationException", "Message", "")
		return
	}
	if code, msg, ok := checkAuth(r, "sagemaker"); !ok {
		status := http.StatusForbidden
		if code == "IncompleteSignatureException" {
			status = http.StatusBadRequest
		}
		writeJSONError(w, status, code, "message", msg)
		return
	}
	svc, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	if svc != "SageMaker" {
		writeJSONError(w, http.StatusBadRequest, "UnknownOperationException", "Message", "")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-amz-json-1.1") {
		writeJSONError(w, http.StatusBadRequest, "SerializationException", "Message", "Unsupported Content-Type: "+ct)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "SerializationException", "Message", err.Error())
		return
	}
	if code, status := s.takeFault(); code != "" {
		msg := "Rate exceeded"
		if status >= 500 {
			msg = "We encountered an internal error. Please try again."
		}
		if op == "CreateTrainingJob" {
			var req createRequest
			_ = json.Unmarshal(body, &req)
			s.recordCreate(req.TrainingJobName, code)
		}
		s.log.Debug("injected fault", "op", op, "code", code)
		writeJSONError(w, status, code, "Message", msg)
		return
	}

	var out any
	var aerr *apiError
	switch op {
	case "CreateTrainingJob":
		out, aerr = s.createTrainingJob(body)
	case "DescribeTrainingJob":
		out, aerr = s.describeTrainingJob(body)
	case "StopTrainingJob":
		out, aerr = s.stopTrainingJob(body)
	case "ListTrainingJobs":
		out, aerr = s.listTrainingJobs(body)
	default:
		aerr = &apiError{400, "UnknownOperationException", "The operation " + op + " is not supported by the simulator."}
	}
	if aerr != nil {
		writeJSONError(w, aerr.status, aerr.code, "Message", aerr.msg)
		return
	}
	writeJSON(w, out)
}

func decodeBody(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return &apiError{400, "SerializationException", "Malformed JSON: " + err.Error()}
		}
		return &apiError{400, "SerializationException", err.Error()}
	}
	return nil
}

func (s *Server) recordCreate(name, outcome string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordCreateLocked(name, outcome)
}

func (s *Server) recordCreateLocked(name, outcome string) {
	s.creates = append(s.creates, CreateCall{Time: time.Now(), Name: name, Outcome: outcome})
}

func (s *Server) arn(name string) string {
	return fmt.Sprintf("arn:aws:sagemaker:%s:%s:training-job/%s", s.opts.Region, s.opts.AccountID, strings.ToLower(name))
}

func (s *Server) createTrainingJob(body []byte) (any, *apiError) {
	var req createRequest
	if e := decodeBody(body, &req); e != nil {
		s.recordCreate("", e.code)
		return nil, e
	}
	if e := validateCreate(&req); e != nil {
		s.recordCreate(req.TrainingJobName, e.code)
		return nil, e
	}
	s.mu.Lock()
	if _, dup := s.jobs[req.TrainingJobName]; dup {
		s.recordCreateLocked(req.TrainingJobName, "ResourceInUse")
		s.mu.Unlock()
		return nil, &apiError{400, "ResourceInUse", fmt.Sprintf("Training job names must be unique within an AWS account and region, and a training job with this name already exists (%s)", s.arn(req.TrainingJobName))}
	}
	if s.faults.limitN > 0 {
		s.faults.limitN--
		s.recordCreateLocked(req.TrainingJobName, "ResourceLimitExceeded")
		s.mu.Unlock()
		return nil, &apiError{400, "ResourceLimitExceeded", fmt.Sprintf("The account-level service limit '%s for training job usage' is 0 Instances, with current utilization of 0 Instances and a request delta of %d Instances. Please use AWS Service Quotas to request an increase for this quota.", req.ResourceConfig.InstanceType, *req.ResourceConfig.InstanceCount)}
	}
	j := s.newJobLocked(&req)
	lost := false
	if s.faults.lostN > 0 {
		s.faults.lostN--
		lost = true
		s.recordCreateLocked(req.TrainingJobName, "lost-answer")
	} else {
		s.recordCreateLocked(req.TrainingJobName, "created")
	}
	s.mu.Unlock()
	s.start(j)
	s.log.Info("training job created", "job", req.TrainingJobName, "instance_type", req.ResourceConfig.InstanceType, "count", *req.ResourceConfig.InstanceCount, "lost_answer", lost)
	if lost {
		return nil, &apiError{500, "InternalFailure", "We encountered an internal error. Please try again."}
	}
	return map[string]string{"TrainingJobArn": j.arn}, nil
}

func (s *Server) describeTrainingJob(body []byte) (any, *apiError) {
	var req struct {
		TrainingJobName string `json:"TrainingJobName"`
	}
	if e := decodeBody(body, &req); e != nil {
		return nil, e
	}
	if !jobNameRE.MatchString(req.TrainingJobName) || len(req.TrainingJobName) > 63 {
		return nil, constraintErr(req.TrainingJobName, "trainingJobName", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[req.TrainingJobName]
	if !ok {
		return nil, notFound
	}
	return s.describeLocked(j), nil
}

func (s *Server) stopTrainingJob(body []byte) (any, *apiError) {
	var req struct {
		TrainingJobName string `json:"TrainingJobName"`
	}
	if e := decodeBody(body, &req); e != nil {
		return nil, e
	}
	s.mu.Lock()
	j, ok := s.jobs[req.TrainingJobName]
	if !ok {
		s.mu.Unlock()
		return nil, notFound
	}
	status := j.status
	s.mu.Unlock()
	switch status {
	case statusInProgress:
		_ = s.control(req.TrainingJobName, ctrlMsg{kind: ctrlStop})
	case statusStopping:
		// Already stopping: accepted, nothing more to do.
	default:
		return nil, validationErr("The request was rejected because the training job is in status %s.", status)
	}
	return struct{}{}, nil
}

func (s *Server) listTrainingJobs(body []byte) (any, *apiError) {
	var req listRequest
	if e := decodeBody(body, &req); e != nil {
		return nil, e
	}
	max := int32(10)
	if req.MaxResults != nil {
		max = *req.MaxResults
		if max < 1 || max > 100 {
			return nil, constraintErr(fmt.Sprint(max), "maxResults", "Member must have value less than or equal to 100 and greater than or equal to 1")
		}
	}
	offset := 0
	if req.NextToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(req.NextToken)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || err2 != nil || n < 0 {
			return nil, validationErr("Invalid pagination token.")
		}
		offset = n
	}
	switch req.SortBy {
	case "", "Name", "CreationTime", "Status":
	default:
		return nil, constraintErr(req.SortBy, "sortBy", "Member must satisfy enum value set: [Name, CreationTime, Status]")
	}
	switch req.SortOrder {
	case "", "Ascending", "Descending":
	default:
		return nil, constraintErr(req.SortOrder, "sortOrder", "Member must satisfy enum value set: [Ascending, Descending]")
	}

	s.mu.Lock()
	var all []summary
	for _, name := range s.order {
		j := s.jobs[name]
		if req.NameContains != "" && !strings.Contains(strings.ToLower(name), strings.ToLower(req.NameContains)) {
			continue
		}
		if req.StatusEquals != "" && j.status != req.StatusEquals {
			continue
		}
		if req.CreationTimeAfter != nil && !j.created.After(time.Time(*req.CreationTimeAfter)) {
			continue
		}
		if req.CreationTimeBefore != nil && !j.created.Before(time.Time(*req.CreationTimeBefore)) {
			continue
		}
		d := s.describeLocked(j)
		all = append(all, summary{
			TrainingJobName: d.TrainingJobName, TrainingJobArn: d.TrainingJobArn,
			TrainingJobStatus: d.TrainingJobStatus, SecondaryStatus: d.SecondaryStatus,
			CreationTime: d.CreationTime, LastModifiedTime: d.LastModifiedTime,
			TrainingEndTime: d.TrainingEndTime, WarmPoolStatus: d.WarmPoolStatus,
		})
	}
	s.mu.Unlock()

	less := func(a, b summary) bool {
		switch req.SortBy {
		case "Name":
			return a.TrainingJobName < b.TrainingJobName
		case "Status":
			return a.TrainingJobStatus < b.TrainingJobStatus
		}
		return time.Time(*a.CreationTime).Before(time.Time(*b.CreationTime))
	}
	// AWS lists newest first unless told otherwise.
	desc := req.SortOrder != "Ascending"
	sort.SliceStable(all, func(i, k int) bool {
		if desc {
			return less(all[k], all[i])
		}
		return less(all[i], all[k])
	})

	out := struct {
		TrainingJobSummaries []summary `json:"TrainingJobSummaries"`
		NextToken            string    `json:"NextToken,omitempty"`
	}{TrainingJobSummaries: []summary{}}
	if offset < len(all) {
		end := min(offset+int(max), len(all))
		out.TrainingJobSummaries = all[offset:end]
		if end < len(all) {
			out.NextToken = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
		}
	}
	return out, nil
}
