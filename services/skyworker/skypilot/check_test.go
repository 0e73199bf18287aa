package skypilot

import (
	"reflect"
	"testing"
)

// TestParseCheckLog reads `sky check` output as SkyPilot prints it: colour
// codes, an enabled cloud with a hint, reasons per capability, reasons that
// continue on indented lines, and the summary that must not be taken for a
// cloud.
func TestParseCheckLog(t *testing.T) {
	log := "Checking credentials to enable infra for SkyPilot.\n" +
		"\x1b[32m\x1b[22m  AWS: enabled [compute, storage]\x1b[0m\n" +
		"    Hint [storage]: \x1b[93mset up S3 access for buckets\x1b[0m\n" +
		"\x1b[2m  Azure: disabled \x1b[0m\n" +
		"    Reason [compute]: Azure CLI returned error: token expired\n" +
		"    Reason [storage]: storage account not set\n" +
		"\x1b[2m  GCP: disabled \x1b[0m\n" +
		"    Reason [compute, storage]: GCP tools are not installed. Run the following commands:\n" +
		"        $ pip install google-api-python-client\n" +
		"        $ conda install -c conda-forge google-cloud-sdk -y\n" +
		"\x1b[2m  Lambda: disabled \x1b[0m\n" +
		"\n\U0001F389 Enabled infra \U0001F389\n" +
		"  \x1b[32mAWS [compute, storage]\x1b[0m\n" +
		"\nTo enable a cloud, follow the hints above and rerun: sky check\n"
	enabled, disabled := ParseCheckLog(log)
	if !reflect.DeepEqual(enabled, []string{"AWS"}) {
		t.Errorf("enabled = %q", enabled)
	}
	want := map[string]string{
		"Azure":  "Azure CLI returned error: token expired; storage account not set",
		"GCP":    "GCP tools are not installed. Run the following commands: $ pip install google-api-python-client $ conda install -c conda-forge google-cloud-sdk -y",
		"Lambda": "",
	}
	if !reflect.DeepEqual(disabled, want) {
		t.Errorf("disabled = %q\nwant       %q", disabled, want)
	}
}
