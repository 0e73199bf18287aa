package rh_test

import (
	"errors"
	"strings"
	"testing"

	rh "github.com/rhq/rh"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "gpu-a", "x1", strings.Repeat("a", 63)} {
		if err := rh.ValidateName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "A", "-a", "a-", "a_b", "a.b", strings.Repeat("a", 64), "ssh", "s3", "here"} {
		err := rh.ValidateName(bad)
		if !errors.Is(err, rh.ErrInvalid) {
			t.Errorf("%q accepted or wrong error: %v", bad, err)
		}
		var e *rh.Error
		if errors.As(err, &e) && e.Field != "name" {
			t.Errorf("%q: field %q, want name", bad, e.Field)
		}
	}
}

func TestInferKindAsRunhouseDoes(t *testing.T) {
	cases := []struct {
		spec rh.Spec
		want rh.Kind
	}{
		{rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"1.2.3.4"}}}, rh.KindBYO},
		{rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "A100:4"}}, rh.KindOnDemand},
		{rh.Spec{OnDemand: &rh.OnDemandSpec{Provider: "gcp"}}, rh.KindOnDemand},
		{rh.Spec{SageMaker: &rh.SageMakerSpec{Role: "r"}}, rh.KindSageMaker},
		{rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "ml.g5.xlarge"}}, rh.KindSageMaker},
	}
	for _, tc := range cases {
		s := tc.spec
		s.Normalize()
		if s.Kind != tc.want {
			t.Errorf("%+v inferred %q, want %q", tc.spec, s.Kind, tc.want)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", tc.spec, err)
		}
	}
}

func TestInstanceTypeForms(t *testing.T) {
	cases := map[string]rh.InstanceTypeForm{
		"m5.xlarge": rh.FormInstance, "p4d.24xlarge": rh.FormInstance, "n1-standard-4": rh.FormInstance, "Standard_NC6": rh.FormInstance,
		"A100:4": rh.FormAccelerator, "V100:1": rh.FormAccelerator, "tpu-v3-8:1": rh.FormAccelerator, "T4:0.5": rh.FormAccelerator,
		"CPU:2": rh.FormCPU, "CPU:2+": rh.FormCPU,
		"": rh.FormInvalid, "A100:": rh.FormInvalid, "A100:0": rh.FormInvalid, "CPU:+": rh.FormInvalid, "m5 xlarge": rh.FormInvalid, "a:b:c": rh.FormInvalid,
	}
	for in, want := range cases {
		if got := rh.ParseInstanceType(in); got != want {
			t.Errorf("ParseInstanceType(%q) = %v, want %v", in, got, want)
		}
	}
}

// Every rule names its field.
func TestValidateNamesTheField(t *testing.T) {
	neg := -5
	five := 5
	cases := []struct {
		name  string
		spec  rh.Spec
		field string
	}{
		{"no kind", rh.Spec{}, "kind"},
		{"bad kind", rh.Spec{Kind: "moon"}, "kind"},
		{"autostop below -1", rh.Spec{AutostopMins: &neg, OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge"}}, "autostop_mins"},
		{"two sections", rh.Spec{Kind: rh.KindBYO, BYO: &rh.BYOSpec{IPs: []string{"1.2.3.4"}}, OnDemand: &rh.OnDemandSpec{}}, "ondemand"},
		{"byo without ips", rh.Spec{Kind: rh.KindBYO}, "byo.ips"},
		{"byo bad ip", rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"1.2.3.4", "300.1.1.1"}}}, "byo.ips[1]"},
		{"byo bad host", rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"bad_host!"}}}, "byo.ips[0]"},
		{"byo duplicate", rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"a.lan", "a.lan"}}}, "byo.ips[1]"},
		{"byo port", rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"a.lan"}, SSHPort: 70000}}, "byo.ssh_port"},
		{"byo user", rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"a.lan"}, SSHUser: "bad user"}}, "byo.ssh_user"},
		{"byo proxy newline", rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"a.lan"}, ProxyCommand: "nc %h %p\nrm -rf /"}}, "byo.proxy_command"},
		{"byo jump", rh.Spec{BYO: &rh.BYOSpec{IPs: []string{"a.lan"}, JumpHost: "u@:99999"}}, "byo.jump_host"},
		{"byo autostop", rh.Spec{AutostopMins: &five, BYO: &rh.BYOSpec{IPs: []string{"a.lan"}}}, "autostop_mins"},
		{"ondemand instance", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "A100:x"}}, "ondemand.instance_type"},
		{"ondemand ml instance", rh.Spec{Kind: rh.KindOnDemand, OnDemand: &rh.OnDemandSpec{InstanceType: "ml.m5.large"}}, "ondemand.instance_type"},
		{"ondemand count", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge", NumInstances: -1}}, "ondemand.num_instances"},
		{"ondemand provider", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge", Provider: "moon"}}, "ondemand.provider"},
		{"ondemand region without provider", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge", Region: "us-east-1"}}, "ondemand.region"},
		{"ondemand region", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge", Provider: "aws", Region: "US EAST"}}, "ondemand.region"},
		{"ondemand memory", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge", Memory: "lots"}}, "ondemand.memory"},
		{"ondemand disk", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge", DiskSize: -1}}, "ondemand.disk_size"},
		{"ondemand port", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge", OpenPorts: []int{80, 0}}}, "ondemand.open_ports[1]"},
		{"ondemand image", rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge", ImageID: "two words"}}, "ondemand.image_id"},
		{"sagemaker role", rh.Spec{SageMaker: &rh.SageMakerSpec{Role: "arn:aws:iam::12:role/x"}}, "sagemaker.role"},
		{"sagemaker role name", rh.Spec{SageMaker: &rh.SageMakerSpec{Role: "has space"}}, "sagemaker.role"},
		{"sagemaker instance", rh.Spec{SageMaker: &rh.SageMakerSpec{InstanceType: "m5.large"}}, "sagemaker.instance_type"},
		{"sagemaker count", rh.Spec{SageMaker: &rh.SageMakerSpec{NumInstances: 101}}, "sagemaker.num_instances"},
		{"sagemaker wait", rh.Spec{SageMaker: &rh.SageMakerSpec{ConnectionWaitTime: -1}}, "sagemaker.connection_wait_time"},
		{"sagemaker job name", rh.Spec{SageMaker: &rh.SageMakerSpec{JobName: "-bad"}}, "sagemaker.job_name"},
		{"sagemaker profile", rh.Spec{SageMaker: &rh.SageMakerSpec{Profile: "a b"}}, "sagemaker.profile"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec
			s.Normalize()
			err := s.Validate()
			var e *rh.Error
			if !errors.As(err, &e) || e.Code != rh.EINVALID {
				t.Fatalf("Validate = %v, want an invalid-input error", err)
			}
			if e.Field != tc.field {
				t.Fatalf("field = %q (%v), want %q", e.Field, err, tc.field)
			}
		})
	}
}

func TestErrorsMatchSentinels(t *testing.T) {
	err := rh.Invalid("byo.ips", "bad")
	if !errors.Is(err, rh.ErrInvalid) || errors.Is(err, rh.ErrNotFound) {
		t.Fatal("invalid error does not match only ErrInvalid")
	}
	if !errors.Is(rh.NotFound("x"), rh.ErrNotFound) || !errors.Is(rh.Conflict("x"), rh.ErrConflict) {
		t.Fatal("sentinels do not match")
	}
	if rh.ErrorCode(errors.New("plain")) != rh.EINTERNAL {
		t.Fatal("plain error is not internal")
	}
}

func FuzzValidateSpec(f *testing.F) {
	f.Add("byo", "10.0.0.1,host.lan", "m5.xlarge", "aws", "us-east-1", "ml", 22, 1, -1)
	f.Add("ondemand", "", "A100:4", "cheapest", "", "", 0, 4, 30)
	f.Add("sagemaker", "", "ml.g5.xlarge", "", "", "", 0, 2, 60)
	f.Add("", "", "CPU:2+", "", "", "", 0, 0, 0)
	f.Fuzz(func(t *testing.T, kind, ips, instance, provider, region, user string, port, n, autostop int) {
		s := rh.Spec{Kind: rh.Kind(kind), AutostopMins: &autostop}
		switch kind {
		case "byo":
			s.BYO = &rh.BYOSpec{IPs: strings.Split(ips, ","), SSHUser: user, SSHPort: port}
		case "sagemaker":
			s.SageMaker = &rh.SageMakerSpec{InstanceType: instance, NumInstances: n, Region: region}
		default:
			s.OnDemand = &rh.OnDemandSpec{InstanceType: instance, Provider: provider, Region: region, NumInstances: n}
		}
		s.Normalize()
		err := s.Validate()
		if err == nil {
			// An accepted spec is stable: validating it again accepts it.
			again := s
			again.Normalize()
			if err := again.Validate(); err != nil {
				t.Fatalf("accepted spec refused on second validation: %v", err)
			}
			return
		}
		var e *rh.Error
		if !errors.As(err, &e) || e.Field == "" {
			t.Fatalf("error without a field: %v", err)
		}
	})
}

func TestUnknownSageMakerInstanceTypeIsRefusedWithASuggestion(t *testing.T) {
	s := rh.Spec{SageMaker: &rh.SageMakerSpec{InstanceType: "ml.m5.largee"}}
	s.Normalize()
	err := s.Validate()
	if !errors.Is(err, &rh.Error{Code: rh.EINVALID, Field: "sagemaker.instance_type"}) || !strings.Contains(err.Error(), "did you mean ml.m5.large?") {
		t.Fatalf("ml.m5.largee: %v", err)
	}
	s = rh.Spec{SageMaker: &rh.SageMakerSpec{InstanceType: "ml.g5.xlarge"}}
	s.Normalize()
	if err := s.Validate(); err != nil {
		t.Fatalf("ml.g5.xlarge: %v", err)
	}
}

func TestSageMakerClustersStopByDefault(t *testing.T) {
	sm := rh.Spec{SageMaker: &rh.SageMakerSpec{InstanceType: "ml.m5.large"}}
	sm.Normalize()
	if got := sm.Autostop(); got != rh.DefaultSageMakerAutostopMins {
		t.Fatalf("a SageMaker cluster with no autostop gets %d, want %d", got, rh.DefaultSageMakerAutostopMins)
	}
	never := -1
	sm = rh.Spec{SageMaker: &rh.SageMakerSpec{InstanceType: "ml.m5.large"}, AutostopMins: &never}
	sm.Normalize()
	if sm.Autostop() != -1 {
		t.Fatal("an explicit -1 was overridden")
	}
	od := rh.Spec{OnDemand: &rh.OnDemandSpec{InstanceType: "m5.xlarge"}}
	od.Normalize()
	if od.Autostop() != -1 {
		t.Fatalf("an on-demand cluster with no autostop gets %d, want -1 (never)", od.Autostop())
	}
}
