module github.com/awsfanout/fanout

go 1.24.0

require (
	github.com/aws/smithy-go v1.28.9
	go.uber.org/goleak v1.3.0
	golang.org/x/sync v0.19.0
)

require github.com/aws/aws-sdk-go-v2 v1.48.0
