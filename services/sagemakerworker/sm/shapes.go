package sm

// Wire shapes of the operations rh calls, with the AWS JSON member names:
// only the members rh sends or reads. Optional members rh always sends, or
// whose zero value is AWS's default, are plain values with omitempty.

// TrainingJobStatus values (DescribeTrainingJob's TrainingJobStatus).
const (
	JobInProgress = "InProgress"
	JobCompleted  = "Completed"
	JobFailed     = "Failed"
	JobStopping   = "Stopping"
	JobStopped    = "Stopped"
	JobDeleting   = "Deleting"
)

// SecondaryStatus values that rh tells apart; the others (Starting,
// Pending, Downloading, Restarting, Updating, ...) all mean provisioning.
const (
	SecondaryStarting            = "Starting"
	SecondaryDownloading         = "Downloading"
	SecondaryTraining            = "Training"
	SecondaryInterrupted         = "Interrupted" // spot capacity reclaimed
	SecondaryUploading           = "Uploading"
	SecondaryStopping            = "Stopping"
	SecondaryCompleted           = "Completed"
	SecondaryFailed              = "Failed"
	SecondaryStopped             = "Stopped"
	SecondaryMaxRuntimeExceeded  = "MaxRuntimeExceeded"
	SecondaryMaxWaitTimeExceeded = "MaxWaitTimeExceeded"
)

// CreateTrainingJobInput is a CreateTrainingJob request.
type CreateTrainingJobInput struct {
	TrainingJobName           string                  `json:"TrainingJobName"`
	RoleArn                   string                  `json:"RoleArn"`
	AlgorithmSpecification    *AlgorithmSpecification `json:"AlgorithmSpecification,omitempty"`
	OutputDataConfig          *OutputDataConfig       `json:"OutputDataConfig,omitempty"`
	ResourceConfig            *ResourceConfig         `json:"ResourceConfig,omitempty"`
	StoppingCondition         *StoppingCondition      `json:"StoppingCondition,omitempty"`
	RemoteDebugConfig         *RemoteDebugConfig      `json:"RemoteDebugConfig,omitempty"`
	InputDataConfig           []Channel               `json:"InputDataConfig,omitempty"`
	HyperParameters           map[string]string       `json:"HyperParameters,omitempty"`
	Environment               map[string]string       `json:"Environment,omitempty"`
	Tags                      []Tag                   `json:"Tags,omitempty"`
	EnableManagedSpotTraining bool                    `json:"EnableManagedSpotTraining,omitempty"`
}

// AlgorithmSpecification is the training container and how it starts.
type AlgorithmSpecification struct {
	TrainingImage       string   `json:"TrainingImage,omitempty"`
	TrainingInputMode   string   `json:"TrainingInputMode"` // File, Pipe or FastFile
	ContainerEntrypoint []string `json:"ContainerEntrypoint,omitempty"`
	ContainerArguments  []string `json:"ContainerArguments,omitempty"`
}

// OutputDataConfig is where artifacts go.
type OutputDataConfig struct {
	S3OutputPath string `json:"S3OutputPath"`
}

// ResourceConfig is the job's instances.
type ResourceConfig struct {
	InstanceType   string `json:"InstanceType"`
	InstanceCount  int32  `json:"InstanceCount"`
	VolumeSizeInGB int32  `json:"VolumeSizeInGB"`
}

// StoppingCondition bounds the job's run time (and, for spot, its wait).
type StoppingCondition struct {
	MaxRuntimeInSeconds  int32 `json:"MaxRuntimeInSeconds"`
	MaxWaitTimeInSeconds int32 `json:"MaxWaitTimeInSeconds,omitempty"`
}

// RemoteDebugConfig turns on SSM access to the job's instances.
type RemoteDebugConfig struct {
	EnableRemoteDebug bool `json:"EnableRemoteDebug"`
}

// Channel is one input channel.
type Channel struct {
	ChannelName string     `json:"ChannelName"`
	DataSource  DataSource `json:"DataSource"`
}

// DataSource is a channel's source.
type DataSource struct {
	S3DataSource *S3DataSource `json:"S3DataSource,omitempty"`
}

// S3DataSource is an S3 prefix read by every instance.
type S3DataSource struct {
	S3DataType             string `json:"S3DataType"` // S3Prefix
	S3Uri                  string `json:"S3Uri"`
	S3DataDistributionType string `json:"S3DataDistributionType,omitempty"` // FullyReplicated
}

// Tag is a job tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type createTrainingJobOutput struct {
	TrainingJobArn string `json:"TrainingJobArn"`
}

type trainingJobName struct {
	TrainingJobName string `json:"TrainingJobName"`
}

type describeTrainingJobOutput struct {
	TrainingJobName            string            `json:"TrainingJobName"`
	TrainingJobArn             string            `json:"TrainingJobArn"`
	TrainingJobStatus          string            `json:"TrainingJobStatus"`
	SecondaryStatus            string            `json:"SecondaryStatus"`
	FailureReason              string            `json:"FailureReason"`
	CreationTime               *epochTime        `json:"CreationTime"`
	BillableTimeInSeconds      int32             `json:"BillableTimeInSeconds"`
	Environment                map[string]string `json:"Environment"`
	ResourceConfig             *ResourceConfig   `json:"ResourceConfig"`
	SecondaryStatusTransitions []struct {
		Status        string     `json:"Status"`
		StatusMessage string     `json:"StatusMessage"`
		StartTime     *epochTime `json:"StartTime"`
		EndTime       *epochTime `json:"EndTime"`
	} `json:"SecondaryStatusTransitions"`
}
