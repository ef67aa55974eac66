package mototest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartCallStop(t *testing.T) {
	s := Require(t)
	defer StopShared()
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	cfg := s.Config("eu-west-1")
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Account) == "" {
		t.Error("no account in GetCallerIdentity's answer")
	}
}
