package ozfake

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/hostbind"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// SecretStore is a SecretService that keeps secrets in memory, for tests
// that need one answer to follow from another (update what was created,
// list what was updated): names, etags, update masks and bindings to
// hosts behave as the secretstore's do (proto/oz/secrets/v1), without
// permissions (any caller may do anything). Values arrive sealed and are
// opened with Sealer, so that a bound secret's value can be checked as
// the secretstore checks it; they are kept only for that and never
// returned. Serve it with Fake; read what it holds with Secret.
type SecretStore struct {
	sealer *Sealer
	caller string // "users/alice": what "users/me" stands for

	mu      sync.Mutex
	secrets map[string]*storedSecret // by resource name
	clock   time.Time
	etags   int
}

type storedSecret struct {
	meta  *secretsv1.Secret
	value []byte
}

// NewSecretStore returns an empty store whose callers are users/{user},
// opening values with sealer (the Sealer of the server that serves it).
func NewSecretStore(sealer *Sealer, user string) *SecretStore {
	return &SecretStore{
		sealer:  sealer,
		caller:  "users/" + user,
		secrets: map[string]*storedSecret{},
		clock:   time.Date(2026, time.May, 20, 12, 0, 0, 0, time.UTC),
	}
}

// Fake returns the SecretService serving s.
func (s *SecretStore) Fake() *Secrets {
	return &Secrets{
		CreateSecretFunc:         s.create,
		GetSecretFunc:            s.get,
		ListSecretsFunc:          s.list,
		UpdateSecretFunc:         s.update,
		DeleteSecretFunc:         s.delete,
		ListAvailableSecretsFunc: s.listAvailable,
	}
}

// Secret returns a copy of the metadata of the secret of resource name
// ("users/me/..." stands for the caller's), or nil when there is none.
func (s *SecretStore) Secret(name string) *secretsv1.Secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.secrets[s.canonical(name)]; ok {
		return proto.CloneOf(st.meta)
	}
	return nil
}

// SetBinding replaces the binding of the secret name as another client's
// UpdateSecret would (a new etag, the binding normalised), for tests of
// concurrent changes. It panics when there is no such secret or the
// binding is invalid.
func (s *SecretStore) SetBinding(name string, b *secretsv1.HostBinding) {
	if _, err := s.update(context.Background(), &secretsv1.UpdateSecretRequest{
		Name: name, Binding: b, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"binding"}},
	}); err != nil {
		panic(fmt.Sprintf("ozfake: SetBinding %s: %v", name, err))
	}
}

func (s *SecretStore) create(_ context.Context, r *secretsv1.CreateSecretRequest) (*secretsv1.CreateSecretResponse, error) {
	owner := s.owner(r.GetParent())
	if owner == "" {
		return nil, fieldError("parent", "must be teams/{team} or users/{user}")
	}
	if !validSecretID(r.GetSecretId()) {
		return nil, fieldError("secret_id", "must match [A-Za-z_][A-Za-z0-9_]*, at most 255 characters")
	}
	binding, err := validateBinding(r.GetBinding())
	if err != nil {
		return nil, err
	}
	value, err := s.valueOf(owner, r.GetSecretId(), r.GetValue(), r.GetSealedValue())
	if err != nil {
		return nil, err
	}
	if err := checkBoundValue(binding, value, "sealed_value"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, st := range s.secrets {
		if strings.HasPrefix(name, owner+"/secrets/") && strings.EqualFold(st.meta.GetSecretId(), r.GetSecretId()) {
			return nil, status.Errorf(codes.AlreadyExists, "secret %s already exists (names are unique without regard to case)", name)
		}
	}
	now := s.tick()
	scope := secretsv1.Scope_SCOPE_TEAM
	if strings.HasPrefix(owner, "users/") {
		scope = secretsv1.Scope_SCOPE_PERSONAL
	}
	meta := &secretsv1.Secret{
		Name: owner + "/secrets/" + r.GetSecretId(), SecretId: r.GetSecretId(), Scope: scope, Owner: owner,
		Description: r.GetDescription(), ValueVersion: 1,
		CreateTime: now, UpdateTime: now, ValueUpdateTime: now, CreateBy: s.caller, UpdateBy: s.caller,
		Etag: s.newEtag(), Binding: binding,
	}
	s.secrets[meta.GetName()] = &storedSecret{meta: meta, value: value}
	return &secretsv1.CreateSecretResponse{Secret: proto.CloneOf(meta)}, nil
}

func (s *SecretStore) get(_ context.Context, r *secretsv1.GetSecretRequest) (*secretsv1.GetSecretResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookup(r.GetName())
	if err != nil {
		return nil, err
	}
	return &secretsv1.GetSecretResponse{Secret: proto.CloneOf(st.meta)}, nil
}

// update applies the mask's paths as the secretstore does: "binding"
// replaces the binding whole (absent or without hosts: not bound); with
// no mask, the fields that are set. A binding is checked against the
// value it will hold: the new one, or the stored one.
func (s *SecretStore) update(_ context.Context, r *secretsv1.UpdateSecretRequest) (*secretsv1.UpdateSecretResponse, error) {
	setValue, setDesc, setBinding, err := updatePaths(r)
	if err != nil {
		return nil, err
	}
	var binding *secretsv1.HostBinding
	if setBinding {
		if binding, err = validateBinding(r.GetBinding()); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	st, err := s.lookup(r.GetName())
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var value []byte
	if setValue {
		if value, err = s.valueOf(st.meta.GetOwner(), st.meta.GetSecretId(), r.GetValue(), r.GetSealedValue()); err != nil {
			return nil, err
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if st, err = s.lookup(r.GetName()); err != nil {
		return nil, err
	}
	if r.GetEtag() != "" && r.GetEtag() != st.meta.GetEtag() {
		return nil, status.Error(codes.FailedPrecondition, "etag mismatch: the secret changed since that etag was read; get it again and retry")
	}
	finalBinding, finalValue := st.meta.GetBinding(), st.value
	if setBinding {
		finalBinding = binding
	}
	if setValue {
		finalValue = value
	}
	field := "binding.hosts"
	if setValue {
		field = "sealed_value"
	}
	if err := checkBoundValue(finalBinding, finalValue, field); err != nil {
		return nil, err
	}
	now := s.tick()
	m := st.meta
	if setValue {
		st.value = value
		m.ValueVersion++
		m.ValueUpdateTime = now
	}
	if setDesc {
		m.Description = r.GetDescription()
	}
	if setBinding {
		m.Binding = binding
	}
	m.UpdateTime, m.UpdateBy, m.Etag = now, s.caller, s.newEtag()
	return &secretsv1.UpdateSecretResponse{Secret: proto.CloneOf(m)}, nil
}

func (s *SecretStore) delete(_ context.Context, r *secretsv1.DeleteSecretRequest) (*secretsv1.DeleteSecretResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookup(r.GetName())
	if err != nil {
		return nil, err
	}
	if r.GetEtag() != "" && r.GetEtag() != st.meta.GetEtag() {
		return nil, status.Error(codes.FailedPrecondition, "etag mismatch: the secret changed since that etag was read; get it again and retry")
	}
	delete(s.secrets, st.meta.GetName())
	return &secretsv1.DeleteSecretResponse{}, nil
}

func (s *SecretStore) list(_ context.Context, r *secretsv1.ListSecretsRequest) (*secretsv1.ListSecretsResponse, error) {
	owner := s.owner(r.GetParent())
	if owner == "" {
		return nil, fieldError("parent", "must be teams/{team} or users/{user}")
	}
	page, next, err := s.page(r.GetPageSize(), r.GetPageToken(), func(m *secretsv1.Secret) bool { return m.GetOwner() == owner })
	return &secretsv1.ListSecretsResponse{Secrets: page, NextPageToken: next}, err
}

func (s *SecretStore) listAvailable(_ context.Context, r *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error) {
	page, next, err := s.page(r.GetPageSize(), r.GetPageToken(), func(m *secretsv1.Secret) bool {
		return m.GetScope() == secretsv1.Scope_SCOPE_TEAM || m.GetOwner() == s.caller
	})
	return &secretsv1.ListAvailableSecretsResponse{Secrets: page, NextPageToken: next}, err
}

// page returns the secrets keep selects in the secretstore's order (by
// name without regard to case, team before personal, then owner), from
// the index token names, at most size (0: 100) of them.
func (s *SecretStore) page(size int32, token string, keep func(*secretsv1.Secret) bool) ([]*secretsv1.Secret, string, error) {
	s.mu.Lock()
	var all []*secretsv1.Secret
	for _, st := range s.secrets {
		if keep(st.meta) {
			all = append(all, proto.CloneOf(st.meta))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b *secretsv1.Secret) int {
		return cmp.Or(
			cmp.Compare(strings.ToLower(a.GetSecretId()), strings.ToLower(b.GetSecretId())),
			cmp.Compare(a.GetScope(), b.GetScope()),
			cmp.Compare(a.GetOwner(), b.GetOwner()),
		)
	})
	start := 0
	if token != "" {
		var err error
		if start, err = strconv.Atoi(token); err != nil || start < 0 || start > len(all) {
			return nil, "", fieldError("page_token", "is not a token this list returned")
		}
	}
	n := int(size)
	if n <= 0 {
		n = 100
	}
	end := min(start+n, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[start:end], next, nil
}

// lookup returns the secret of resource name; s.mu is held.
func (s *SecretStore) lookup(name string) (*storedSecret, error) {
	canon := s.canonical(name)
	if st, ok := s.secrets[canon]; ok {
		return st, nil
	}
	return nil, status.Errorf(codes.NotFound, "secret %s not found (names are matched exactly)", canon)
}

// canonical is name with "users/me" replaced by the caller.
func (s *SecretStore) canonical(name string) string {
	if rest, ok := strings.CutPrefix(name, "users/me/"); ok {
		return s.caller + "/" + rest
	}
	return name
}

// owner is the canonical owner of parent, or "" when it names none.
func (s *SecretStore) owner(parent string) string {
	switch {
	case parent == "users/me":
		return s.caller
	case strings.Count(parent, "/") == 1 && (strings.HasPrefix(parent, "teams/") || strings.HasPrefix(parent, "users/")) && !strings.HasSuffix(parent, "/"):
		return parent
	}
	return ""
}

// valueOf is the value a request carries, plain or sealed for the secret
// id of owner.
func (s *SecretStore) valueOf(owner, id string, plain []byte, sealed *secretsv1.SealedValue) ([]byte, error) {
	switch {
	case sealed != nil && len(plain) > 0:
		return nil, fieldError("value", "must not be set together with sealed_value: send the value once, sealed")
	case sealed != nil:
		v, err := s.sealer.Open(sealed, owner, id)
		if err != nil {
			return nil, fieldError("sealed_value", "%v", err)
		}
		if len(v) == 0 {
			return nil, fieldError("sealed_value", "must not be empty")
		}
		return v, nil
	case len(plain) == 0:
		return nil, fieldError("value", "is required (a non-empty value, or a sealed_value)")
	}
	return slices.Clone(plain), nil
}

// tick advances the store's clock by a second and returns it; s.mu is held.
func (s *SecretStore) tick() *timestamppb.Timestamp {
	s.clock = s.clock.Add(time.Second)
	return timestamppb.New(s.clock)
}

// newEtag returns an etag no secret had; s.mu is held.
func (s *SecretStore) newEtag() string {
	s.etags++
	return fmt.Sprintf("etag-%d", s.etags)
}

// updatePaths reads an UpdateSecretRequest's mask as the secretstore does.
func updatePaths(r *secretsv1.UpdateSecretRequest) (setValue, setDesc, setBinding bool, err error) {
	paths := r.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		setValue = len(r.GetValue()) > 0 || r.GetSealedValue() != nil
		setDesc = r.GetDescription() != ""
		setBinding = len(r.GetBinding().GetHosts()) > 0
		if !setValue && !setDesc && !setBinding {
			return false, false, false, fieldError("update_mask", "nothing to update: set a value, a description or a binding, or name the fields to replace in update_mask")
		}
		return setValue, setDesc, setBinding, nil
	}
	for _, p := range paths {
		switch p {
		case "value":
			setValue = true
		case "description":
			setDesc = true
		case "binding":
			setBinding = true
		default:
			return false, false, false, fieldError("update_mask", "unknown path %q (value, description, binding)", p)
		}
	}
	if setValue && len(r.GetValue()) == 0 && r.GetSealedValue() == nil {
		return false, false, false, fieldError("value", "is required when update_mask names value")
	}
	return setValue, setDesc, setBinding, nil
}

// validateBinding checks b as the secretstore does (field
// "binding.hosts") and returns it normalised; nil when b is not a
// binding (absent, or no hosts and no flag).
func validateBinding(b *secretsv1.HostBinding) (*secretsv1.HostBinding, error) {
	switch {
	case b == nil:
		return nil, nil
	case len(b.GetHosts()) == 0 && (b.GetAllowQuery() || b.GetAllowBody()):
		return nil, fieldError("binding.hosts", "is required with allow_query or allow_body: name the hosts the secret is bound to (none: not bound)")
	case len(b.GetHosts()) == 0:
		return nil, nil
	}
	hosts, err := hostbind.Normalize(b.GetHosts())
	if err != nil {
		return nil, fieldError("binding.hosts", "%s", err)
	}
	return &secretsv1.HostBinding{Hosts: hosts, AllowQuery: b.GetAllowQuery(), AllowBody: b.GetAllowBody()}, nil
}

// checkBoundValue refuses a value that cannot be bound, when b binds it;
// the error names field and never holds the value.
func checkBoundValue(b *secretsv1.HostBinding, value []byte, field string) error {
	if b == nil {
		return nil
	}
	if err := hostbind.ValidateValue(value); err != nil {
		return fieldError(field, "the value %s", err)
	}
	return nil
}

func validSecretID(id string) bool {
	if id == "" || len(id) > 255 || '0' <= id[0] && id[0] <= '9' {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// fieldError is InvalidArgument as the services send it: "field: message"
// and a google.rpc.BadRequest naming the field.
func fieldError(field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	st := status.New(codes.InvalidArgument, field+": "+msg)
	if d, err := st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}},
	}); err == nil {
		st = d
	}
	return st.Err()
}
