package environment_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozrun"
)

// start serves a fake EnvironmentService that answers with what it was
// asked, and a caller in team acme.
func start(t *testing.T) *ozfake.Server {
	t.Helper()
	echo := func(name, desc string, names []string) *scopev1.Environment {
		_, id, _ := strings.Cut(name, "/environments/")
		return &scopev1.Environment{Name: name, EnvironmentId: id, Description: desc, SecretNames: names}
	}
	return ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")},
		Environments: &ozfake.Environments{
			CreateEnvironmentFunc: func(_ context.Context, r *scopev1.CreateEnvironmentRequest) (*scopev1.CreateEnvironmentResponse, error) {
				return &scopev1.CreateEnvironmentResponse{Environment: echo(r.GetParent()+"/environments/"+r.GetEnvironmentId(), r.GetDescription(), r.GetSecretNames())}, nil
			},
			UpdateEnvironmentFunc: func(_ context.Context, r *scopev1.UpdateEnvironmentRequest) (*scopev1.UpdateEnvironmentResponse, error) {
				return &scopev1.UpdateEnvironmentResponse{Environment: echo(r.GetName(), r.GetDescription(), r.GetAddSecretNames())}, nil
			},
			GetEnvironmentFunc: func(_ context.Context, r *scopev1.GetEnvironmentRequest) (*scopev1.GetEnvironmentResponse, error) {
				return &scopev1.GetEnvironmentResponse{Environment: echo(r.GetName(), "", nil)}, nil
			},
			ListEnvironmentsFunc: func(_ context.Context, r *scopev1.ListEnvironmentsRequest) (*scopev1.ListEnvironmentsResponse, error) {
				return &scopev1.ListEnvironmentsResponse{Environments: []*scopev1.Environment{
					echo(r.GetParent()+"/environments/ops-tools", "ops", []string{"DEPLOY_TOKEN", "MISSING_KEY"}),
					echo(r.GetParent()+"/environments/ci", "", nil),
				}}, nil
			},
			DeleteEnvironmentFunc: func(context.Context, *scopev1.DeleteEnvironmentRequest) (*scopev1.DeleteEnvironmentResponse, error) {
				return &scopev1.DeleteEnvironmentResponse{}, nil
			},
		},
	})
}

func TestCreate(t *testing.T) {
	srv := start(t)
	r := ozrun.Run(t, srv, ozrun.Options{}, "environment", "create", "ops-tools",
		"--secret", "DEPLOY_TOKEN", "--description", "ops", "--secret", "MISSING_KEY")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s), want 0", r.Code, r.Stderr)
	}
	want := &scopev1.CreateEnvironmentRequest{Parent: "teams/acme", EnvironmentId: "ops-tools", Description: "ops", SecretNames: []string{"DEPLOY_TOKEN", "MISSING_KEY"}}
	if got := ozrun.Only[*scopev1.CreateEnvironmentRequest](t, srv, "CreateEnvironment"); !proto.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestUpdate(t *testing.T) {
	srv := start(t)
	r := ozrun.Run(t, srv, ozrun.Options{}, "env", "update", "ops-tools", "--add-secret", "A", "--remove-secret", "B", "-d", "new", "--team", "acme")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s), want 0", r.Code, r.Stderr)
	}
	want := &scopev1.UpdateEnvironmentRequest{
		Name: "teams/acme/environments/ops-tools", Description: "new",
		AddSecretNames: []string{"A"}, RemoveSecretNames: []string{"B"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
	}
	if got := ozrun.Only[*scopev1.UpdateEnvironmentRequest](t, srv, "UpdateEnvironment"); !proto.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if n := len(srv.CallsTo("GetCaller")); n != 0 {
		t.Errorf("got %d GetCaller calls, want none (--team given)", n)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"UpdateNothing", []string{"environment", "update", "ops-tools"}, "nothing to update: pass --description, --add-secret or --remove-secret"},
		{"DeleteNoTerminal", []string{"environment", "delete", "ops-tools"}, "pass --force"},
		{"CreateNoName", []string{"environment", "create", "--secret", "A"}, "missing NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t)
			r := ozrun.Run(t, srv, ozrun.Options{}, tt.args...)
			if r.Code != exitcode.Usage || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("got %d %q, want %d and %q", r.Code, r.Stderr, exitcode.Usage, tt.want)
			}
			if n := len(srv.Calls()); n != 0 {
				t.Errorf("got %d calls, want none", n)
			}
		})
	}
}

func TestListAndGet(t *testing.T) {
	srv := start(t)
	r := ozrun.Run(t, srv, ozrun.Options{}, "environment", "list")
	want := "NAME       SECRETS                    DESCRIPTION\n" +
		"ci         -                          -\n" +
		"ops-tools  DEPLOY_TOKEN, MISSING_KEY  ops\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("got %d\n%s\nwant\n%s", r.Code, r.Stdout, want)
	}
	r = ozrun.Run(t, srv, ozrun.Options{}, "environment", "list", "-o", "json")
	var items []struct {
		Name         string   `json:"name"`
		ResourceName string   `json:"resource_name"`
		Team         string   `json:"team"`
		SecretNames  []string `json:"secret_names"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &items); err != nil {
		t.Fatalf("stdout %q: %v", r.Stdout, err)
	}
	if len(items) != 2 || items[1].Name != "ops-tools" || items[1].Team != "acme" || items[1].ResourceName != "teams/acme/environments/ops-tools" || len(items[1].SecretNames) != 2 {
		t.Errorf("got %+v, want ci and ops-tools", items)
	}
	if !strings.Contains(r.Stdout, `"secret_names": []`) {
		t.Errorf("got %s, want an empty list as [] (never null)", r.Stdout)
	}

	r = ozrun.Run(t, srv, ozrun.Options{}, "environment", "get", "ci")
	if !strings.Contains(r.Stdout, "SECRETS      - (no allowlist: runs using it receive every secret available to them)\n") {
		t.Errorf("got\n%s\nwant it to say ci sets no allowlist", r.Stdout)
	}
}

func TestDeleteForce(t *testing.T) {
	srv := start(t)
	r := ozrun.Run(t, srv, ozrun.Options{}, "environment", "delete", "-f", "ops-tools", "--etag", "e3")
	if r.Code != 0 {
		t.Fatalf("got exit code %d (%s), want 0", r.Code, r.Stderr)
	}
	got := ozrun.Only[*scopev1.DeleteEnvironmentRequest](t, srv, "DeleteEnvironment")
	if got.GetName() != "teams/acme/environments/ops-tools" || got.GetEtag() != "e3" {
		t.Errorf("got %v, want teams/acme/environments/ops-tools with etag e3", got)
	}
}
