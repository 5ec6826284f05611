package ozfake

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

const storeCanary = "canary-fake-store-value"

// wantStatus checks err's code and, for InvalidArgument, the field its
// BadRequest names; err never holds storeCanary.
func wantStatus(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("got %v, want %v", err, code)
	}
	if strings.Contains(st.Message(), storeCanary) {
		t.Errorf("the error holds the value: %v", err)
	}
	if field == "" {
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 && br.GetFieldViolations()[0].GetField() == field {
			return
		}
	}
	t.Errorf("got %v (details %v), want a BadRequest naming %s", err, st.Details(), field)
}

func newTestStore(t *testing.T) (*SecretStore, *Secrets) {
	t.Helper()
	s := NewSecretStore(NewSealer(t), "alice")
	return s, s.Fake()
}

func hb(query, body bool, hosts ...string) *secretsv1.HostBinding {
	return &secretsv1.HostBinding{Hosts: hosts, AllowQuery: query, AllowBody: body}
}

func TestSecretStoreCreateBinding(t *testing.T) {
	tests := []struct {
		name      string
		binding   *secretsv1.HostBinding
		value     string
		want      *secretsv1.HostBinding
		wantField string // refused, naming it
	}{
		{name: "Absent"},
		{name: "NoHostsIsUnbound", binding: hb(false, false)},
		{name: "Normalised", binding: hb(true, false, "API.example.com", "*.b.example.com", "api.example.com"), want: hb(true, false, "api.example.com", "*.b.example.com")},
		{name: "QueryWithoutHosts", binding: hb(true, false), wantField: "binding.hosts"},
		{name: "BadPattern", binding: hb(false, false, "a.example.com:443"), wantField: "binding.hosts"},
		{name: "ValueTooShort", binding: hb(false, false, "a.example.com"), value: "short", wantField: "sealed_value"},
		{name: "ValueWithNewline", binding: hb(false, false, "a.example.com"), value: storeCanary + "\n", wantField: "sealed_value"},
		{name: "ShortValueUnbound", value: "short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake := newTestStore(t)
			value := storeCanary
			if tt.value != "" {
				value = tt.value
			}
			resp, err := fake.CreateSecretFunc(context.Background(), &secretsv1.CreateSecretRequest{
				Parent: "teams/acme", SecretId: "API_KEY", Value: []byte(value), Binding: tt.binding,
			})
			if tt.wantField != "" {
				wantStatus(t, err, codes.InvalidArgument, tt.wantField)
				if s.Secret("teams/acme/secrets/API_KEY") != nil {
					t.Error("a refused create stored the secret")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(resp.GetSecret().GetBinding(), tt.want) {
				t.Errorf("got binding %v, want %v", resp.GetSecret().GetBinding(), tt.want)
			}
			if !proto.Equal(s.Secret("teams/acme/secrets/API_KEY"), resp.GetSecret()) {
				t.Errorf("stored %v, answered %v", s.Secret("teams/acme/secrets/API_KEY"), resp.GetSecret())
			}
		})
	}
}

func TestSecretStoreUpdateBinding(t *testing.T) {
	mask := func(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
	tests := []struct {
		name      string
		value     string // created with
		req       *secretsv1.UpdateSecretRequest
		want      *secretsv1.HostBinding
		wantCode  codes.Code
		wantField string
	}{
		{name: "Replace", req: &secretsv1.UpdateSecretRequest{UpdateMask: mask("binding"), Binding: hb(false, true, "c.example.com")}, want: hb(false, true, "c.example.com")},
		{name: "AbsentUnbinds", req: &secretsv1.UpdateSecretRequest{UpdateMask: mask("binding")}},
		{name: "NoHostsUnbinds", req: &secretsv1.UpdateSecretRequest{UpdateMask: mask("binding"), Binding: hb(false, false)}},
		{name: "NotInMaskKept", req: &secretsv1.UpdateSecretRequest{UpdateMask: mask("description"), Description: "d", Binding: hb(false, false, "c.example.com")}, want: hb(false, false, "a.example.com")},
		{name: "NoMaskWithHosts", req: &secretsv1.UpdateSecretRequest{Binding: hb(false, false, "c.example.com")}, want: hb(false, false, "c.example.com")},
		{name: "EtagMatches", req: &secretsv1.UpdateSecretRequest{UpdateMask: mask("binding"), Etag: "etag-1"}},
		{name: "EtagMismatch", req: &secretsv1.UpdateSecretRequest{UpdateMask: mask("binding"), Etag: "etag-0"}, want: hb(false, false, "a.example.com"), wantCode: codes.FailedPrecondition},
		{name: "UnknownPath", req: &secretsv1.UpdateSecretRequest{UpdateMask: mask("hosts")}, want: hb(false, false, "a.example.com"), wantCode: codes.InvalidArgument, wantField: "update_mask"},
		{name: "BadPattern", req: &secretsv1.UpdateSecretRequest{UpdateMask: mask("binding"), Binding: hb(false, false, "*")}, want: hb(false, false, "a.example.com"), wantCode: codes.InvalidArgument, wantField: "binding.hosts"},
		{
			name: "NewValueTooShort", req: &secretsv1.UpdateSecretRequest{UpdateMask: mask("value"), Value: []byte("short")},
			want: hb(false, false, "a.example.com"), wantCode: codes.InvalidArgument, wantField: "sealed_value",
		},
		{
			name: "UnbindAndShortValue", req: &secretsv1.UpdateSecretRequest{UpdateMask: mask("value", "binding"), Value: []byte("short")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, fake := newTestStore(t)
			ctx := context.Background()
			if _, err := fake.CreateSecretFunc(ctx, &secretsv1.CreateSecretRequest{
				Parent: "users/me", SecretId: "API_KEY", Value: []byte(storeCanary), Binding: hb(false, false, "a.example.com"),
			}); err != nil {
				t.Fatal(err)
			}
			tt.req.Name = "users/me/secrets/API_KEY"
			resp, err := fake.UpdateSecretFunc(ctx, tt.req)
			if tt.wantCode != codes.OK {
				wantStatus(t, err, tt.wantCode, tt.wantField)
			} else if err != nil {
				t.Fatal(err)
			}
			got := s.Secret("users/alice/secrets/API_KEY")
			if !proto.Equal(got.GetBinding(), tt.want) {
				t.Errorf("got binding %v, want %v", got.GetBinding(), tt.want)
			}
			if (got.GetEtag() == "etag-1") != (tt.wantCode != codes.OK) {
				t.Errorf("got etag %q after the update (refused: %v)", got.GetEtag(), tt.wantCode != codes.OK)
			}
			if err == nil && !proto.Equal(resp.GetSecret(), got) {
				t.Errorf("answered %v, stored %v", resp.GetSecret(), got)
			}
		})
	}
}

// A binding can be set only on a value that can be bound.
func TestSecretStoreBindStoredShortValue(t *testing.T) {
	_, fake := newTestStore(t)
	ctx := context.Background()
	if _, err := fake.CreateSecretFunc(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "K", Value: []byte("short")}); err != nil {
		t.Fatal(err)
	}
	_, err := fake.UpdateSecretFunc(ctx, &secretsv1.UpdateSecretRequest{
		Name: "teams/acme/secrets/K", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"binding"}}, Binding: hb(false, false, "a.example.com"),
	})
	wantStatus(t, err, codes.InvalidArgument, "binding.hosts")
}

// Lists are in the secretstore's order, paged; ListAvailableSecrets
// holds the caller's personal secrets and every team's.
func TestSecretStoreList(t *testing.T) {
	_, fake := newTestStore(t)
	ctx := context.Background()
	for _, c := range []struct{ parent, id string }{
		{"users/me", "b_key"}, {"teams/beta", "A_KEY"}, {"users/bob", "C_KEY"}, {"teams/acme", "A_KEY"}, {"teams/acme", "B_KEY"},
	} {
		if _, err := fake.CreateSecretFunc(ctx, &secretsv1.CreateSecretRequest{Parent: c.parent, SecretId: c.id, Value: []byte(storeCanary)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fake.CreateSecretFunc(ctx, &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "a_key", Value: []byte(storeCanary)}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("a_key next to A_KEY: got %v, want AlreadyExists", err)
	}
	var names []string
	req := &secretsv1.ListAvailableSecretsRequest{PageSize: 2}
	for {
		resp, err := fake.ListAvailableSecretsFunc(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range resp.GetSecrets() {
			names = append(names, s.GetName())
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	want := "teams/acme/secrets/A_KEY teams/beta/secrets/A_KEY teams/acme/secrets/B_KEY users/alice/secrets/b_key"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	mine, err := fake.ListSecretsFunc(ctx, &secretsv1.ListSecretsRequest{Parent: "users/me"})
	if err != nil || len(mine.GetSecrets()) != 1 || mine.GetSecrets()[0].GetSecretId() != "b_key" {
		t.Errorf("users/me: got %v, %v; want b_key", mine, err)
	}
}
