package client_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

func TestDialSendsTokenAndClient(t *testing.T) {
	srv := ozfake.Start(t, nil, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")}, nil)
	conn, err := client.Dial(srv.Settings())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Directory.GetCaller(context.Background(), &scopev1.GetCallerRequest{}); err != nil {
		t.Fatal(err)
	}
	md := srv.Calls()[0].MD
	if got, want := strings.Join(md.Get("authorization"), ","), "Bearer "+ozfake.Token; got != want {
		t.Errorf("got authorization %q, want %q", got, want)
	}
	if got, want := strings.Join(md.Get("x-oz-client"), ","), "cli"; got != want {
		t.Errorf("got x-oz-client %q, want %q", got, want)
	}
}

func TestDialErrors(t *testing.T) {
	srv := ozfake.Start(t, nil, &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice")}, nil)
	other := ozfake.Start(t, nil, nil, nil) // its CA did not sign srv's certificate
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := lis.Addr().String()
	lis.Close()

	tests := []struct {
		name     string
		edit     func(s *settingsEdit)
		wantCode int
		wantMsg  string
	}{
		{"NoToken", func(s *settingsEdit) { s.token = "" }, exitcode.Denied, "OZ_TOKEN"},
		{"MissingCAFile", func(s *settingsEdit) { s.caFile = "/nonexistent/ca.pem" }, exitcode.Error, "read CA file"},
		{"CAFileNotPEM", func(s *settingsEdit) { s.caFile = notPEM }, exitcode.Error, "no PEM certificate"},
		{"UntrustedCertificate", func(s *settingsEdit) { s.caFile = other.CAFile }, exitcode.Unavailable, "cannot verify the gateway at " + srv.Addr + " (check OZ_CA_FILE)"},
		{"Unreachable", func(s *settingsEdit) { s.addr = closedAddr }, exitcode.Unavailable, "cannot reach the gateway at " + closedAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &settingsEdit{addr: srv.Addr, caFile: srv.CAFile, token: ozfake.Token}
			tt.edit(e)
			s := srv.Settings()
			s.Addr, s.CAFile, s.Token = e.addr, e.caFile, e.token
			conn, err := client.Dial(s)
			if err == nil {
				defer conn.Close()
				_, err = conn.Directory.GetCaller(context.Background(), &scopev1.GetCallerRequest{})
			}
			lines, code := exitcode.Describe(err)
			if code != tt.wantCode {
				t.Errorf("got exit code %d (%q), want %d", code, lines, tt.wantCode)
			}
			if !strings.Contains(strings.Join(lines, "\n"), tt.wantMsg) {
				t.Errorf("got %q, want it to contain %q", lines, tt.wantMsg)
			}
			if strings.Contains(strings.Join(lines, "\n"), ozfake.Token) {
				t.Errorf("got %q, want no token in it", lines)
			}
		})
	}
}

type settingsEdit struct{ addr, caFile, token string }

// An Unavailable the gateway answers is about a service behind it, even
// when its message reads like a connection error (a service relaying its
// own): the CLI says the gateway answered, and does not send the person
// to check OZ_ADDR.
func TestUnavailableFromBehindTheGateway(t *testing.T) {
	for _, msg := range []string{
		"the resolver did not answer within 5s; retry",
		"connection error: desc = \"transport: authentication handshake failed: context deadline exceeded\"",
	} {
		srv := ozfake.Start(t, nil, &ozfake.Directory{GetCallerFunc: func(context.Context, *scopev1.GetCallerRequest) (*scopev1.GetCallerResponse, error) {
			return nil, status.Error(codes.Unavailable, msg)
		}}, nil)
		conn, err := client.Dial(srv.Settings())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = conn.Directory.GetCaller(context.Background(), &scopev1.GetCallerRequest{})
		lines, code := exitcode.Describe(err)
		got := strings.Join(lines, "\n")
		if code != exitcode.Unavailable || got != "the gateway answered: "+msg {
			t.Errorf("got %d %q, want %d %q", code, got, exitcode.Unavailable, "the gateway answered: "+msg)
		}
	}
}
