package sm_test

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sagemaker/types"

	rh "github.com/rhq/rh"
)

// The domain's list is generated from the SDK's enum; after an SDK upgrade,
// regenerate it (go generate ./...) or this fails.
func TestTrainingInstanceTypesMatchTheSDK(t *testing.T) {
	var sdk []string
	for _, v := range types.TrainingInstanceType("").Values() {
		sdk = append(sdk, string(v))
	}
	slices.Sort(sdk)
	if !slices.Equal(sdk, rh.SageMakerTrainingInstanceTypes) {
		t.Fatalf("rh.SageMakerTrainingInstanceTypes (%d) differs from the SDK's list (%d): run go generate ./...", len(rh.SageMakerTrainingInstanceTypes), len(sdk))
	}
}
