package partition_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/awsfanout/fanout/internal/partition"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sdkPartition is one partition of the SDK's partitions.json.
type sdkPartition struct {
	ID          string                     `json:"id"`
	RegionRegex string                     `json:"regionRegex"`
	Regions     map[string]json.RawMessage `json:"regions"`
	Outputs     struct {
		ImplicitGlobalRegion string `json:"implicitGlobalRegion"`
	} `json:"outputs"`
}

// sdkPartitions reads the pinned SDK's own partition data from the module
// cache.
func sdkPartitions(t *testing.T) []sdkPartition {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-sdk-go-v2").Output()
	if err != nil {
		t.Fatalf("go list the SDK's module: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "internal", "endpoints", "awsrulesfn", "partitions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Partitions []sdkPartition `json:"partitions"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Partitions) == 0 {
		t.Fatal("the SDK's partitions.json lists no partition")
	}
	return doc.Partitions
}

func TestTableMatchesTheSDK(t *testing.T) {
	sdk := sdkPartitions(t)
	ours := map[string]partition.Partition{}
	for _, p := range partition.All {
		ours[p.ID] = p
	}
	for _, sp := range sdk {
		p, ok := ours[sp.ID]
		if !ok {
			t.Errorf("the SDK knows partition %s (regions %s); add it to partition.All", sp.ID, sp.RegionRegex)
			continue
		}
		delete(ours, sp.ID)
		if p.RegionPattern() != sp.RegionRegex || p.GlobalRegion != sp.Outputs.ImplicitGlobalRegion {
			t.Errorf("partition %s: ours %s, global %s; the SDK's %s, global %s",
				sp.ID, p.RegionPattern(), p.GlobalRegion, sp.RegionRegex, sp.Outputs.ImplicitGlobalRegion)
		}
		for region := range sp.Regions {
			if strings.HasSuffix(region, "-global") { // aws-global and the like name endpoints, not regions
				continue
			}
			if got, ok := partition.Of(region); !ok || got.ID != sp.ID {
				t.Errorf("partition.Of(%q) = %q, %v; the SDK says %s", region, got.ID, ok, sp.ID)
			}
		}
	}
	for id := range ours {
		t.Errorf("partition %s is not in the SDK's data", id)
	}
}

func TestOf(t *testing.T) {
	for region, want := range map[string]string{
		"us-east-1": "aws", "eu-west-1": "aws", "me-west-1": "aws", "cn-north-1": "aws-cn",
		"us-gov-west-1": "aws-us-gov", "eusc-de-east-1": "aws-eusc", "us-iso-east-1": "aws-iso",
		"us-isob-east-1": "aws-iso-b", "eu-isoe-west-1": "aws-iso-e", "us-isof-south-1": "aws-iso-f",
		"": "", "us-east-1 ": "", "US-EAST-1": "", "us-east": "", "eusc-fr-east-1": "", "aws-global": "",
		"us-east-1/x": "", "xx-east-1": "",
	} {
		p, ok := partition.Of(region)
		if p.ID != want || ok != (want != "") {
			t.Errorf("Of(%q) = %q, %v; want %q", region, p.ID, ok, want)
		}
	}
}
