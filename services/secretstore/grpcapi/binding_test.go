package grpcapi_test

import (
	"context"
	"crypto/hpke"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/ozsecrets/oz/lib/sealwire"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
	"github.com/ozsecrets/oz/services/secretstore"
)

// bindCanary is planted in the values of bound secrets: long enough to be
// bound, and never in a response, an error, an event or a log line.
const bindCanary = "CANARY-bind-4e1a9c-value"

// newBindingEnv starts a server whose Service reads clock, so that tests
// can tell an update's time from the creation's.
func newBindingEnv(t *testing.T) (*testEnv, *testClock) {
	t.Helper()
	clk := newTestClock(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	e := newTestEnvWith(t, func(cfg *secretstore.Config) { cfg.Now = clk.Now })
	return e, clk
}

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

func getSecret(t *testing.T, c secretsv1.SecretServiceClient, token, name string) *secretsv1.Secret {
	t.Helper()
	resp, err := c.GetSecret(as(token), &secretsv1.GetSecretRequest{Name: name})
	if err != nil {
		t.Fatalf("GetSecret %s: %v", name, err)
	}
	return resp.GetSecret()
}

func updateSecret(t *testing.T, c secretsv1.SecretServiceClient, req *secretsv1.UpdateSecretRequest) *secretsv1.Secret {
	t.Helper()
	resp, err := c.UpdateSecret(as("admin"), req)
	if err != nil {
		t.Fatalf("UpdateSecret %s: %v", req.GetName(), err)
	}
	return resp.GetSecret()
}

// bindingOf returns the binding of the secret named name among secs.
func bindingOf(t *testing.T, secs []*secretsv1.Secret, name string) *secretsv1.HostBinding {
	t.Helper()
	i := slices.IndexFunc(secs, func(s *secretsv1.Secret) bool { return s.GetName() == name })
	if i < 0 {
		t.Fatalf("%s is not listed", name)
	}
	return secs[i].GetBinding()
}

// TestBindingOverTheWire: a binding is stored normalised and returned by
// every read; an update replaces it (with or without a mask) or removes it
// without touching the value, and other updates keep it.
func TestBindingOverTheWire(t *testing.T) {
	e, clk := newBindingEnv(t)
	c := e.client(t, "gateway")
	const bound, plain, empty = "teams/acme/secrets/BOUND", "teams/acme/secrets/PLAIN", "teams/acme/secrets/EMPTY"
	resp, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{
		Parent: "teams/acme", SecretId: "BOUND", Value: []byte(bindCanary),
		Binding: &secretsv1.HostBinding{Hosts: []string{"API.Example.com", "*.metabase.example.com", "api.example.com"}, AllowQuery: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &secretsv1.HostBinding{Hosts: []string{"api.example.com", "*.metabase.example.com"}, AllowQuery: true}
	created := resp.GetSecret()
	if !proto.Equal(created.GetBinding(), want) {
		t.Fatalf("CreateSecret: binding %v, want %v", created.GetBinding(), want)
	}
	mustCreate(t, c, "admin", "teams/acme", "PLAIN", bindCanary)
	if _, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{
		Parent: "teams/acme", SecretId: "EMPTY", Value: []byte("short"), Binding: &secretsv1.HostBinding{},
	}); err != nil {
		t.Fatalf("CreateSecret with an empty binding (not bound): %v", err)
	}

	// Every read returns it; an unbound secret has none.
	if got := getSecret(t, c, "member", bound); !proto.Equal(got, created) {
		t.Errorf("GetSecret: got %v, want %v", got, created)
	}
	for _, name := range []string{plain, empty} {
		if got := getSecret(t, c, "member", name); got.Binding != nil {
			t.Errorf("GetSecret %s: binding %v, want none", name, got.GetBinding())
		}
	}
	listed, err := c.ListSecrets(as("member"), &secretsv1.ListSecretsRequest{Parent: "teams/acme"})
	if err != nil {
		t.Fatal(err)
	}
	available, err := c.ListAvailableSecrets(as("member"), &secretsv1.ListAvailableSecretsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for what, secs := range map[string][]*secretsv1.Secret{"ListSecrets": listed.GetSecrets(), "ListAvailableSecrets": available.GetSecrets()} {
		if got := bindingOf(t, secs, bound); !proto.Equal(got, want) {
			t.Errorf("%s: binding %v, want %v", what, got, want)
		}
		if got := bindingOf(t, secs, plain); got != nil {
			t.Errorf("%s: unbound secret's binding %v, want none", what, got)
		}
	}

	// A binding alone, without a mask: the binding changes, the value does
	// not; the etag and update time do, as for a description.
	clk.Advance(time.Minute)
	other := &secretsv1.HostBinding{Hosts: []string{"api.openai.com"}, AllowBody: true}
	upd := updateSecret(t, c, &secretsv1.UpdateSecretRequest{Name: bound, Binding: other})
	switch {
	case !proto.Equal(upd.GetBinding(), other):
		t.Errorf("update of the binding: got %v, want %v", upd.GetBinding(), other)
	case upd.GetValueVersion() != 1 || !upd.GetValueUpdateTime().AsTime().Equal(created.GetValueUpdateTime().AsTime()):
		t.Errorf("update of the binding: value version %d, value update time %v; want the value untouched", upd.GetValueVersion(), upd.GetValueUpdateTime().AsTime())
	case upd.GetEtag() == created.GetEtag() || !upd.GetUpdateTime().AsTime().Equal(clk.Now()):
		t.Errorf("update of the binding: etag %q (was %q), update time %v; want a new etag and %v", upd.GetEtag(), created.GetEtag(), upd.GetUpdateTime().AsTime(), clk.Now())
	}
	if got := getSecret(t, c, "member", bound); !proto.Equal(got, upd) {
		t.Errorf("GetSecret after the update: got %v, want %v", got, upd)
	}

	// Other updates keep it: a description, a new value (long enough).
	upd = updateSecret(t, c, &secretsv1.UpdateSecretRequest{Name: bound, Description: "the OpenAI key"})
	if !proto.Equal(upd.GetBinding(), other) {
		t.Errorf("after a description update: binding %v, want %v", upd.GetBinding(), other)
	}
	upd = updateSecret(t, c, &secretsv1.UpdateSecretRequest{Name: bound, Value: []byte(bindCanary + "-v2"), UpdateMask: mask("value")})
	if !proto.Equal(upd.GetBinding(), other) || upd.GetValueVersion() != 2 {
		t.Errorf("after a value update: binding %v, version %d; want %v and 2", upd.GetBinding(), upd.GetValueVersion(), other)
	}

	// Unbound through the mask: absent, or without hosts.
	for _, b := range []*secretsv1.HostBinding{nil, {}} {
		upd = updateSecret(t, c, &secretsv1.UpdateSecretRequest{Name: bound, Binding: b, UpdateMask: mask("binding")})
		if upd.Binding != nil || getSecret(t, c, "member", bound).Binding != nil {
			t.Errorf("unbound with %v: binding %v, want none", b, upd.GetBinding())
		}
		if upd.GetValueVersion() != 2 {
			t.Errorf("unbinding: value version %d, want 2", upd.GetValueVersion())
		}
		upd = updateSecret(t, c, &secretsv1.UpdateSecretRequest{Name: bound, Binding: other, UpdateMask: mask("binding")})
		if !proto.Equal(upd.GetBinding(), other) {
			t.Errorf("bound again through the mask: got %v, want %v", upd.GetBinding(), other)
		}
	}

	// A binding and a value at once, the value long enough although the
	// current one is not.
	upd = updateSecret(t, c, &secretsv1.UpdateSecretRequest{Name: empty, Value: []byte(bindCanary), Binding: other, UpdateMask: mask("value", "binding")})
	if !proto.Equal(upd.GetBinding(), other) || upd.GetValueVersion() != 2 {
		t.Errorf("value and binding at once: binding %v, version %d; want %v and 2", upd.GetBinding(), upd.GetValueVersion(), other)
	}
	if logs := e.logs.String(); strings.Contains(logs, bindCanary) {
		t.Errorf("a value reached the logs:\n%s", logs)
	}
}

// TestBindingBadInputChangesNothing: each refused binding, and each value
// a binding cannot hold, names its field and the rule, and changes
// nothing: no secret made, the binding and etag as they were, no event.
func TestBindingBadInputChangesNothing(t *testing.T) {
	e, _ := newBindingEnv(t)
	c := e.client(t, "gateway")
	good := &secretsv1.HostBinding{Hosts: []string{"api.example.com"}}
	resp, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "BOUND", Value: []byte(bindCanary), Binding: good})
	if err != nil {
		t.Fatal(err)
	}
	origBound := resp.GetSecret()
	origShort := mustCreate(t, c, "admin", "teams/acme", "SHORT", "12345") // 5 bytes: cannot be bound
	before := len(e.outboxEvents(t))

	hosts := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("h%d.example.com", i)
		}
		return out
	}
	create := func(value string, b *secretsv1.HostBinding) func() error {
		return func() error {
			_, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "NEW", Value: []byte(value), Binding: b})
			return err
		}
	}
	update := func(req *secretsv1.UpdateSecretRequest) func() error {
		return func() error {
			_, err := c.UpdateSecret(as("admin"), req)
			return err
		}
	}
	const bound, short = "teams/acme/secrets/BOUND", "teams/acme/secrets/SHORT"
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
		rule  string
	}{
		{"CreateWildcardTLD", create(bindCanary, &secretsv1.HostBinding{Hosts: []string{"*.com"}}), "binding.hosts", "at least two labels"},
		{"CreateIPLiteral", create(bindCanary, &secretsv1.HostBinding{Hosts: []string{"10.0.0.1"}}), "binding.hosts", "not an IP address"},
		{"CreatePort", create(bindCanary, &secretsv1.HostBinding{Hosts: []string{"api.example.com:443"}}), "binding.hosts", "port"},
		{"CreateEmptyHost", create(bindCanary, &secretsv1.HostBinding{Hosts: []string{""}}), "binding.hosts", "must not be empty"},
		{"CreateTooManyHosts", create(bindCanary, &secretsv1.HostBinding{Hosts: hosts(21)}), "binding.hosts", "at most 20"},
		{"CreateFlagsWithoutHosts", create(bindCanary, &secretsv1.HostBinding{AllowQuery: true}), "binding.hosts", "is required with allow_query or allow_body"},
		{"CreateShortValue", create("12345", good), "value", "at least 8 bytes"},
		{"CreateValueWithLF", create(bindCanary+"\nmore", good), "value", "CR, LF or NUL"},
		{"CreateValueWithPlaceholder", create(bindCanary+"oz-ph-abc", good), "value", `"oz-ph-"`},
		{"CreateSealedShortValue", func() error {
			_, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "NEW",
				SealedValue: e.sealFor(t, sealwire.KEMX25519, "teams/acme", "NEW", "12345"), Binding: good})
			return err
		}, "value", "at least 8 bytes"},
		{"UpdateBadHost", update(&secretsv1.UpdateSecretRequest{Name: bound, Binding: &secretsv1.HostBinding{Hosts: []string{"api.*.example.com"}}, UpdateMask: mask("binding")}), "binding.hosts", "'*' is allowed only"},
		{"UpdateBadHostNoMask", update(&secretsv1.UpdateSecretRequest{Name: bound, Binding: &secretsv1.HostBinding{Hosts: []string{"localhost"}}}), "binding.hosts", "at least two labels"},
		{"UpdateFlagsOnlyNoMask", update(&secretsv1.UpdateSecretRequest{Name: bound, Binding: &secretsv1.HostBinding{AllowBody: true}}), "binding.hosts", "is required"},
		{"UpdateFlagsOnlyMask", update(&secretsv1.UpdateSecretRequest{Name: bound, Binding: &secretsv1.HostBinding{AllowQuery: true}, UpdateMask: mask("binding")}), "binding.hosts", "is required"},
		{"UpdateShortValueOfBound", update(&secretsv1.UpdateSecretRequest{Name: bound, Value: []byte("12345"), UpdateMask: mask("value")}), "value", "at least 8 bytes"},
		{"UpdateShortValueOfBoundNoMask", update(&secretsv1.UpdateSecretRequest{Name: bound, Value: []byte("12345")}), "value", "at least 8 bytes"},
		{"UpdateShortValueWithBinding", update(&secretsv1.UpdateSecretRequest{Name: short, Value: []byte("123456"), Binding: good}), "value", "at least 8 bytes"},
		{"BindShortCurrentValue", update(&secretsv1.UpdateSecretRequest{Name: short, Binding: good, UpdateMask: mask("binding")}), "value", "the current value must be at least 8 bytes"},
		{"BindShortCurrentValueNoMask", update(&secretsv1.UpdateSecretRequest{Name: short, Binding: good}), "value", "the current value"},
		{"UpdateUnknownPath", update(&secretsv1.UpdateSecretRequest{Name: bound, Binding: good, UpdateMask: mask("bindings")}), "update_mask", "allowed: value, description, binding"},
		{"UpdateNothing", update(&secretsv1.UpdateSecretRequest{Name: bound, Binding: &secretsv1.HostBinding{}}), "update_mask", "nothing to update"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if f := fieldOf(err); f != tc.field {
				t.Errorf("field: got %q, want %q (%v)", f, tc.field, err)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.rule) || strings.Contains(msg, "CANARY") || strings.Contains(msg, "12345") {
				t.Errorf("message %q: want the rule %q and no value", msg, tc.rule)
			}
		})
	}

	if _, err := c.GetSecret(as("admin"), &secretsv1.GetSecretRequest{Name: "teams/acme/secrets/NEW"}); status.Code(err) != codes.NotFound {
		t.Errorf("NEW after refused creates: %v, want NotFound", err)
	}
	if got := getSecret(t, c, "admin", bound); !proto.Equal(got, origBound) {
		t.Errorf("BOUND after refused updates: got %v, want %v", got, origBound)
	}
	if got := getSecret(t, c, "admin", short); !proto.Equal(got, origShort) {
		t.Errorf("SHORT after refused updates: got %v, want %v", got, origShort)
	}
	for _, ev := range e.outboxEvents(t)[before:] {
		if ev.GetAction() != "request.denied" {
			t.Errorf("a refused request wrote %s", ev.GetAction())
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, bindCanary) {
		t.Errorf("a value reached the logs:\n%s", logs)
	}
}

// TestBindingAudit: secret.create and secret.update record the binding as
// metadata (hosts, flags, whether it changed), never the value.
func TestBindingAudit(t *testing.T) {
	e, _ := newBindingEnv(t)
	c := e.client(t, "gateway")
	value := []byte(auditCanary)
	const name = "teams/acme/secrets/API_KEY"
	if _, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "API_KEY", Value: value,
		Binding: &secretsv1.HostBinding{Hosts: []string{"api.example.com", "*.Example.org"}, AllowQuery: true}}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, c, "admin", "teams/acme", "PLAIN", auditCanary)
	other := &secretsv1.HostBinding{Hosts: []string{"api.openai.com"}, AllowBody: true}
	steps := []*secretsv1.UpdateSecretRequest{
		{Name: name, Binding: other},
		{Name: name, Description: "kept bound"},
		{Name: name, Binding: other, UpdateMask: mask("binding")}, // the same binding: not a change
		{Name: name, Value: append(value, "-v2"...), UpdateMask: mask("value")},
		{Name: name, UpdateMask: mask("binding")},
		{Name: "teams/acme/secrets/PLAIN", Description: "never bound"},
	}
	for _, req := range steps {
		updateSecret(t, c, req)
	}
	var got []map[string]string
	for _, ev := range e.outboxEvents(t) {
		if ev.GetAction() == "secret.create" || ev.GetAction() == "secret.update" {
			got = append(got, ev.GetDetails())
		}
		raw, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		noCanaryIn(t, "event "+ev.GetAction(), raw)
	}
	want := []map[string]string{
		{"value_version": "1", "bound_hosts": "api.example.com,*.example.org", "allow_query": "true"},
		{"value_version": "1"},
		{"value_version": "1", "binding_changed": "true", "bound_hosts": "api.openai.com", "allow_body": "true"},
		{"value_version": "1", "description_changed": "true", "bound_hosts": "api.openai.com", "allow_body": "true"},
		{"value_version": "1", "bound_hosts": "api.openai.com", "allow_body": "true"},
		{"value_version": "2", "value_changed": "true", "bound_hosts": "api.openai.com", "allow_body": "true"},
		{"value_version": "2", "binding_changed": "true"},
		{"value_version": "1", "description_changed": "true"},
	}
	if !slices.EqualFunc(got, want, maps.Equal) {
		t.Errorf("event details:\n got %v\nwant %v", got, want)
	}
}

// openRunEnv opens a sealed run environment as the runner would: the plain
// variables as NAME=value, and the bound ones.
func openRunEnv(t *testing.T, priv hpke.PrivateKey, sealed *scopev1.SealedValues) ([]string, []*scopev1.BoundVar) {
	t.Helper()
	pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(runInfo), sealed.GetCiphertext())
	if err != nil {
		t.Fatalf("hpke.Open: %v", err)
	}
	var env scopev1.RunEnvironment
	if err := proto.Unmarshal(pt, &env); err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, v := range env.GetVars() {
		vars = append(vars, v.GetName()+"="+string(v.GetValue()))
	}
	return vars, env.GetBound()
}

// TestRunSecretsBinding: ListRunSecrets names each secret's binding; a
// bound secret is sealed into the environment's bound with its binding,
// never into its vars; a binding changed since the listing (or not passed
// back) is refused as a rotated version is.
func TestRunSecretsBinding(t *testing.T) {
	e, _ := newBindingEnv(t)
	c := e.client(t, "gateway")
	rc := runClient(t, e, "resolver")
	binding := &secretsv1.HostBinding{Hosts: []string{"api.openai.com"}, AllowQuery: true}
	if _, err := c.CreateSecret(as("admin"), &secretsv1.CreateSecretRequest{Parent: "teams/acme", SecretId: "OPENAI_API_KEY",
		Value: []byte(runCanary + "|openai"), Binding: binding}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, c, "admin", "teams/acme", "PLAIN", runCanary+"|plain")

	cands := list(t, rc, "teams/acme")
	if got := pick(t, cands, "teams/acme/OPENAI_API_KEY")[0].GetBinding(); !proto.Equal(got, binding) {
		t.Fatalf("ListRunSecrets: binding %v, want %v", got, binding)
	}
	if got := pick(t, cands, "teams/acme/PLAIN")[0]; got.Binding != nil {
		t.Fatalf("ListRunSecrets: unbound secret's binding %v, want none", got.GetBinding())
	}
	named, err := rc.ListRunSecrets(context.Background(), &internalapiv1.ListRunSecretsRequest{Owners: []string{"teams/acme"}, Names: []string{"OPENAI_API_KEY"}})
	if err != nil || len(named.GetSecrets()) != 1 || !proto.Equal(named.GetSecrets()[0].GetBinding(), binding) {
		t.Fatalf("ListRunSecrets by name: %v, %v; want the binding %v", named.GetSecrets(), err, binding)
	}

	priv := generateKey(t, 0x0020)
	seal := func(refs []*internalapiv1.SecretRef) (*internalapiv1.SealRunSecretsResponse, error) {
		return rc.SealRunSecrets(context.Background(), &internalapiv1.SealRunSecretsRequest{Secrets: refs, Recipient: recipient(priv), Info: []byte(runInfo)})
	}
	resp, err := seal(pick(t, cands, "teams/acme/PLAIN", "teams/acme/OPENAI_API_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	noCanaryOutsideCiphertext(t, resp)
	vars, bound := openRunEnv(t, priv, resp.GetSealed())
	if want := []string{"PLAIN=" + runCanary + "|plain"}; !slices.Equal(vars, want) {
		t.Errorf("vars: got %v, want %v", vars, want)
	}
	wantBound := []*scopev1.BoundVar{{Name: "OPENAI_API_KEY", Value: []byte(runCanary + "|openai"), Binding: binding}}
	if !slices.EqualFunc(bound, wantBound, func(a, b *scopev1.BoundVar) bool { return proto.Equal(a, b) }) {
		t.Errorf("bound: got %v, want %v", bound, wantBound)
	}

	refused := func(what string, refs []*internalapiv1.SecretRef) {
		t.Helper()
		resp, err := seal(refs)
		if status.Code(err) != codes.FailedPrecondition || resp != nil {
			t.Errorf("%s: got %v, %v; want FailedPrecondition", what, resp, err)
		}
		if msg := status.Convert(err).Message(); strings.Contains(msg, runCanary) {
			t.Errorf("%s: the message holds a value: %q", what, msg)
		}
	}
	stripped := proto.Clone(pick(t, cands, "teams/acme/OPENAI_API_KEY")[0]).(*internalapiv1.SecretRef)
	stripped.Binding = nil
	refused("a bound secret named without its binding", []*internalapiv1.SecretRef{stripped})
	claimed := proto.Clone(pick(t, cands, "teams/acme/PLAIN")[0]).(*internalapiv1.SecretRef)
	claimed.Binding = binding
	refused("an unbound secret named with a binding", []*internalapiv1.SecretRef{claimed})

	// Bound to other hosts, then unbound, after the listing.
	updateSecret(t, c, &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/OPENAI_API_KEY", Binding: &secretsv1.HostBinding{Hosts: []string{"evil.example.com"}}})
	refused("a binding changed since the listing", pick(t, cands, "teams/acme/OPENAI_API_KEY"))
	updateSecret(t, c, &secretsv1.UpdateSecretRequest{Name: "teams/acme/secrets/OPENAI_API_KEY", UpdateMask: mask("binding")})
	refused("a secret unbound since the listing", pick(t, cands, "teams/acme/OPENAI_API_KEY"))

	// Listed again, it seals as it is now: a plain variable.
	resp, err = seal(pick(t, list(t, rc, "teams/acme"), "teams/acme/OPENAI_API_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	vars, bound = openRunEnv(t, priv, resp.GetSealed())
	if want := []string{"OPENAI_API_KEY=" + runCanary + "|openai"}; !slices.Equal(vars, want) || len(bound) != 0 {
		t.Errorf("after unbinding: vars %v, bound %v; want %v and none", vars, bound, want)
	}
	if logs := e.logs.String(); strings.Contains(logs, runCanary) {
		t.Errorf("a value reached the logs:\n%s", logs)
	}
}
