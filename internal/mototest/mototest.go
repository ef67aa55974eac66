// Package mototest starts moto_server, the AWS emulator, for tests that
// talk to AWS over the wire.
package mototest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"go.uber.org/goleak"
)

// Server is a running moto_server.
type Server struct {
	URL string
	cmd *exec.Cmd
}

var (
	once     sync.Once
	shared   *Server
	startErr error
)

// Shared starts one moto_server for the test binary on first use. When
// moto_server is not installed it returns an error that says how to
// install it; Stop ends it.
func Shared() (*Server, error) {
	once.Do(func() { shared, startErr = Start() })
	return shared, startErr
}

// StopShared stops the server Shared started, if any. Call it from
// TestMain after the tests ran.
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
	once, shared, startErr = sync.Once{}, nil, nil
}

// ErrNotInstalled means moto_server is not on PATH.
var ErrNotInstalled = errors.New(`moto_server is not installed; install it with: pip install "moto[server]"`)

// Start starts moto_server on a free loopback port and waits until it
// answers.
func Start() (*Server, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so Stop ends its children too
	cmd.Env = append(os.Environ(), "MOTO_ALLOW_NONEXISTENT_REGION=false")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("mototest: start moto_server: %w", err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	if err := s.waitReady(30 * time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond) // polling a starting process: nothing to wait on
	}
	return fmt.Errorf("mototest: moto_server did not answer at %s within %v", s.URL, limit)
}

// Reset clears the emulator's state.
func (s *Server) Reset() error {
	resp, err := http.Post(s.URL+"/moto-api/reset", "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mototest: reset: %s", resp.Status)
	}
	return nil
}

// Stop ends the server and waits for it.
func (s *Server) Stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Config returns an aws.Config that reaches the server through
// BaseEndpoint, with static test credentials, in region.
func (s *Server) Config(region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDMOTOTEST", "moto-test-secret", ""),
		BaseEndpoint: aws.String(s.URL),
	}
}

// Require returns the shared server, or skips the test with a message
// saying how to install moto_server; with CI=true a missing server fails
// the test instead.
func Require(t testing.TB) *Server {
	t.Helper()
	s, err := Shared()
	if err == nil {
		return s
	}
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
	return nil
}

// Main runs a package's tests, stops the shared server if a test started
// it, and then checks with goleak that no goroutine outlived them. Call
// it from TestMain.
func Main(m *testing.M) { goleak.VerifyTestMain(stopAfter{m}) }

type stopAfter struct{ m *testing.M }

func (s stopAfter) Run() int {
	defer StopShared()
	return s.m.Run()
}

// Fresh returns a config for region that reaches the shared server, after
// clearing the server's state, with an HTTP client of its own whose idle
// connections close when the test ends. Tests that use it share one
// server, so they must not run in parallel.
func Fresh(t testing.TB, region string) aws.Config {
	t.Helper()
	srv := Require(t)
	if err := srv.Reset(); err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config(region)
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	cfg.HTTPClient = hc
	t.Cleanup(hc.CloseIdleConnections)
	return cfg
}

// ErrorServer answers every call with one AWS error body, as the real
// service does, and counts the requests: for the answers moto_server
// never gives (denials, throttling, disabled regions).
func ErrorServer(t testing.TB, status int, contentType, body string) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}
