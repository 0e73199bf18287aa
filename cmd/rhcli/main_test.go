package main

import (
	"testing"

	"github.com/rhq/rh/internal/testkit"
)

// Every rhcli start, `rhcli run` included, runs the package initialisation
// of everything the binary links: packages that are costly to initialise
// must not be linked at all. The SageMaker SDK's alone cost 15-40 ms; the
// worker talks to SageMaker through its own small client instead.
func TestRhcliLinksNoCostlyInit(t *testing.T) {
	testkit.NoLinkedPackages(t, "github.com/aws/aws-sdk-go-v2/service/sagemaker")
}
