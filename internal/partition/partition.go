// Package partition holds the AWS partitions the pinned SDK knows: their
// IDs, which region names belong to each, and the region that global
// services are called in. A test compares it with the SDK's own partition
// data, so that an SDK upgrade that adds a partition fails the test.
package partition

import "regexp"

// Partition is one AWS partition.
type Partition struct {
	ID string // as in ARNs: "aws", "aws-cn", "aws-us-gov", ...

	// GlobalRegion is the region global services (IAM, Organizations) are
	// called in: the SDK's implicitGlobalRegion.
	GlobalRegion string

	regions *regexp.Regexp // the region names of the partition
}

// All are the partitions, as the SDK's partitions.json lists them
// (internal/endpoints/awsrulesfn in github.com/aws/aws-sdk-go-v2).
var All = []Partition{
	{"aws", "us-east-1", regexp.MustCompile(`^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$`)},
	{"aws-cn", "cn-northwest-1", regexp.MustCompile(`^cn\-\w+\-\d+$`)},
	{"aws-eusc", "eusc-de-east-1", regexp.MustCompile(`^eusc\-(de)\-\w+\-\d+$`)},
	{"aws-iso", "us-iso-east-1", regexp.MustCompile(`^us\-iso\-\w+\-\d+$`)},
	{"aws-iso-b", "us-isob-east-1", regexp.MustCompile(`^us\-isob\-\w+\-\d+$`)},
	{"aws-iso-e", "eu-isoe-west-1", regexp.MustCompile(`^eu\-isoe\-\w+\-\d+$`)},
	{"aws-iso-f", "us-isof-south-1", regexp.MustCompile(`^us\-isof\-\w+\-\d+$`)},
	{"aws-us-gov", "us-gov-west-1", regexp.MustCompile(`^us\-gov\-\w+\-\d+$`)},
}

// Of returns the partition region belongs to, and false when region is
// not a region name of any partition.
func Of(region string) (Partition, bool) {
	for _, p := range All {
		if p.regions.MatchString(region) {
			return p, true
		}
	}
	return Partition{}, false
}

// RegionPattern returns the regular expression the partition's region
// names match.
func (p Partition) RegionPattern() string { return p.regions.String() }
