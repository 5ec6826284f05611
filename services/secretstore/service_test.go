package secretstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore"
	"github.com/ozsecrets/oz/services/secretstore/keyring"
	"github.com/ozsecrets/oz/services/secretstore/kvstore"
	"github.com/ozsecrets/oz/services/secretstore/storetest"
)

const canary = "CANARY-4b7e91-do-not-leak"

var (
	alice = &auth.Principal{Kind: auth.KindUser, Name: "users/alice", ID: "alice",
		Teams: map[string]auth.Role{"acme": auth.RoleAdmin, "beta": auth.RoleMember}}
	// root administers every team of the tests.
	root = &auth.Principal{Kind: auth.KindUser, Name: "users/root", ID: "root",
		Teams: map[string]auth.Role{"acme": auth.RoleAdmin, "acme-2": auth.RoleAdmin, "beta": auth.RoleAdmin, "gamma": auth.RoleAdmin}}
	bob = &auth.Principal{Kind: auth.KindUser, Name: "users/bob", ID: "bob",
		Teams: map[string]auth.Role{"acme": auth.RoleMember}}
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	svc   *secretstore.Service
	store *kvstore.Store
	keys  *keyring.Keyring
	clock *fakeClock
	logs  *bytes.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secretstore.db")
	store, err := kvstore.OpenBolt(context.Background(), path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		store.Close()
		if err := kvstore.CheckBolt(path, time.Second); err != nil {
			t.Errorf("consistency check: %v", err)
		}
	})
	kr, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, keys: kr, clock: &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}, logs: &bytes.Buffer{}}
	e.svc = secretstore.NewService(secretstore.Config{
		Store: store, Keyring: kr, Now: e.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	return e
}

func (e *env) create(t *testing.T, p *auth.Principal, parent, id, value string) *secretstore.Secret {
	t.Helper()
	sec, err := e.svc.Create(context.Background(), p, secretstore.CreateRequest{Parent: parent, SecretID: id, Value: []byte(value), Description: "about " + id})
	if err != nil {
		t.Fatalf("Create %s/%s: %v", parent, id, err)
	}
	return sec
}

// value decrypts the stored value of a secret through the internal path.
func (e *env) value(t *testing.T, owner secretstore.Owner, name string) (string, *secretstore.Secret) {
	t.Helper()
	sec, err := e.store.Get(context.Background(), owner, name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.svc.OpenValue(sec)
	if err != nil {
		t.Fatalf("open value of %s: %v", sec.ResourceName(), err)
	}
	return string(v.Bytes()), sec
}

func wantKind(t *testing.T, err error, kind errs.Kind) {
	t.Helper()
	if got := errs.KindOf(err); err == nil || got != kind {
		t.Fatalf("got error %v (kind %v), want kind %v", err, got, kind)
	}
}

func TestCreate(t *testing.T) {
	e := newEnv(t)
	sec := e.create(t, alice, "teams/acme", "API_KEY", canary)
	now := e.clock.Now()
	want := &secretstore.Secret{
		Owner: secretstore.Team("acme"), Name: "API_KEY", Description: "about API_KEY", ValueVersion: 1,
		CreateTime: now, UpdateTime: now, ValueUpdateTime: now, CreateBy: "users/alice", UpdateBy: "users/alice",
		Etag: sec.Etag,
	}
	if sec.Etag == "" {
		t.Error("Etag: got empty")
	}
	if !sec.Value.IsZero() {
		t.Error("Create returned the sealed value; read paths return metadata only")
	}
	if fmt.Sprint(*sec) != fmt.Sprint(*want) {
		t.Errorf("Create: got %+v, want %+v", *sec, *want)
	}
	got, err := e.svc.Get(context.Background(), bob, "teams/acme/secrets/API_KEY")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*got) != fmt.Sprint(*want) {
		t.Errorf("Get: got %+v, want %+v", *got, *want)
	}
	if v, stored := e.value(t, secretstore.Team("acme"), "API_KEY"); v != canary {
		t.Errorf("stored value: got %q, want the canary", v)
	} else if bytes.Contains(stored.Value.Ciphertext, []byte(canary)) {
		t.Error("the stored ciphertext contains the plaintext")
	}
	// users/me is the caller.
	mine := e.create(t, bob, "users/me", "MY_TOKEN", "v")
	if mine.Owner != secretstore.User("bob") {
		t.Errorf("owner of users/me: got %v, want users/bob", mine.Owner)
	}
}

func TestCreateRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	e.create(t, alice, "teams/acme", "API_KEY", "v")
	for _, tc := range []struct {
		name  string
		req   secretstore.CreateRequest
		kind  errs.Kind
		field string
		rule  string
	}{
		{"LeadingDigit", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "1ABC", Value: []byte(canary)}, errs.KindInvalid, "secret_id", "must match"},
		{"Dash", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "A-B", Value: []byte(canary)}, errs.KindInvalid, "secret_id", "must match"},
		{"PATH", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "PATH", Value: []byte(canary)}, errs.KindInvalid, "secret_id", "reserved"},
		{"LD_PRELOAD", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "LD_PRELOAD", Value: []byte(canary)}, errs.KindInvalid, "secret_id", "reserved"},
		{"OZ_X", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "OZ_X", Value: []byte(canary)}, errs.KindInvalid, "secret_id", "reserved"},
		{"EmptyValue", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "B"}, errs.KindInvalid, "value", "is required"},
		{"ValueTooLarge", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "B", Value: append([]byte(canary), make([]byte, 65537-len(canary))...)}, errs.KindInvalid, "value", "at most 65536 bytes"},
		{"NUL", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "B", Value: []byte(canary + "\x00")}, errs.KindInvalid, "value", "NUL"},
		{"LongDescription", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "B", Value: []byte(canary), Description: strings.Repeat("d", 1025)}, errs.KindInvalid, "description", "at most 1024"},
		{"BadParent", secretstore.CreateRequest{Parent: "acme", SecretID: "B", Value: []byte(canary)}, errs.KindInvalid, "parent", "must be teams/{team} or users/{user}"},
		{"CaseClash", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "api_key", Value: []byte(canary)}, errs.KindAlreadyExists, "secret_id", "API_KEY"},
		{"SameName", secretstore.CreateRequest{Parent: "teams/acme", SecretID: "API_KEY", Value: []byte(canary)}, errs.KindAlreadyExists, "secret_id", "already has a secret named API_KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Create(context.Background(), alice, tc.req)
			var ee *errs.Error
			if !errors.As(err, &ee) || ee.Kind != tc.kind || ee.Field != tc.field || !strings.Contains(ee.Message, tc.rule) {
				t.Fatalf("got %v, want kind %v about %s containing %q", err, tc.kind, tc.field, tc.rule)
			}
			if strings.Contains(err.Error(), canary) {
				t.Fatalf("error %q contains the value", err)
			}
			page, err := e.svc.List(context.Background(), alice, secretstore.ListRequest{Parent: "teams/acme"})
			if err != nil {
				t.Fatal(err)
			}
			if got := secretNames(page.Secrets); !slices.Equal(got, []string{"API_KEY"}) {
				t.Fatalf("List after a refused create: got %v, want [API_KEY]", got)
			}
		})
	}
}

func secretNames(secs []*secretstore.Secret) []string {
	out := make([]string, len(secs))
	for i, s := range secs {
		out[i] = s.Owner.String() + "/" + s.Name
		if s.Owner == secretstore.Team("acme") {
			out[i] = s.Name
		}
	}
	return out
}

func TestGetIsByExactName(t *testing.T) {
	e := newEnv(t)
	e.create(t, alice, "teams/acme", "API_KEY", "v")
	_, err := e.svc.Get(context.Background(), alice, "teams/acme/secrets/api_key")
	wantKind(t, err, errs.KindNotFound)
	_, err = e.svc.Update(context.Background(), alice, secretstore.UpdateRequest{Name: "teams/acme/secrets/api_key", Value: []byte("x")})
	wantKind(t, err, errs.KindNotFound)
	err = e.svc.Delete(context.Background(), alice, secretstore.DeleteRequest{Name: "teams/acme/secrets/Api_Key"})
	wantKind(t, err, errs.KindNotFound)
}

func TestUpdate(t *testing.T) {
	type check struct {
		version     int64
		valueMoved  bool
		value, desc string
	}
	for _, tc := range []struct {
		name string
		req  secretstore.UpdateRequest
		want check
	}{
		{"ValueOnly", secretstore.UpdateRequest{Value: []byte("v2")}, check{2, true, "v2", "about API_KEY"}},
		{"DescriptionOnly", secretstore.UpdateRequest{Description: "new"}, check{1, false, "v1", "new"}},
		{"Both", secretstore.UpdateRequest{Value: []byte("v2"), Description: "new"}, check{2, true, "v2", "new"}},
		{"MaskValueIgnoresDescription", secretstore.UpdateRequest{Value: []byte("v2"), Description: "ignored", UpdateMask: []string{"value"}}, check{2, true, "v2", "about API_KEY"}},
		{"MaskDescriptionClears", secretstore.UpdateRequest{UpdateMask: []string{"description"}}, check{1, false, "v1", ""}},
		{"MaskDescriptionIgnoresValue", secretstore.UpdateRequest{Value: []byte("ignored"), Description: "new", UpdateMask: []string{"description"}}, check{1, false, "v1", "new"}},
		{"MaskStar", secretstore.UpdateRequest{Value: []byte("v2"), UpdateMask: []string{"*"}}, check{2, true, "v2", ""}},
		{"MultiLineValue", secretstore.UpdateRequest{Value: []byte("line1\nline2\n")}, check{2, true, "line1\nline2\n", "about API_KEY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			orig := e.create(t, alice, "teams/acme", "API_KEY", "v1")
			e.clock.Advance(time.Hour)
			req := tc.req
			req.Name = "teams/acme/secrets/API_KEY"
			got, err := e.svc.Update(context.Background(), alice, req)
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if got.ValueVersion != tc.want.version {
				t.Errorf("ValueVersion: got %d, want %d", got.ValueVersion, tc.want.version)
			}
			wantVT := orig.ValueUpdateTime
			if tc.want.valueMoved {
				wantVT = e.clock.Now()
			}
			if !got.ValueUpdateTime.Equal(wantVT) {
				t.Errorf("ValueUpdateTime: got %v, want %v", got.ValueUpdateTime, wantVT)
			}
			if !got.UpdateTime.Equal(e.clock.Now()) {
				t.Errorf("UpdateTime: got %v, want %v", got.UpdateTime, e.clock.Now())
			}
			if !got.CreateTime.Equal(orig.CreateTime) || got.CreateBy != "users/alice" {
				t.Errorf("create time/by changed: got %v by %s", got.CreateTime, got.CreateBy)
			}
			if got.Etag == orig.Etag {
				t.Error("Etag did not change")
			}
			if got.Description != tc.want.desc {
				t.Errorf("Description: got %q, want %q", got.Description, tc.want.desc)
			}
			if got.Name != "API_KEY" || got.Owner != secretstore.Team("acme") {
				t.Errorf("name/owner changed: got %s", got.ResourceName())
			}
			if v, _ := e.value(t, secretstore.Team("acme"), "API_KEY"); v != tc.want.value {
				t.Errorf("stored value: got %q, want %q", v, tc.want.value)
			}
		})
	}
}

func TestUpdateBy(t *testing.T) {
	e := newEnv(t)
	e.create(t, alice, "teams/acme", "API_KEY", "v1")
	carol := &auth.Principal{Kind: auth.KindUser, Name: "users/carol", ID: "carol", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
	got, err := e.svc.Update(context.Background(), carol, secretstore.UpdateRequest{Name: "teams/acme/secrets/API_KEY", Description: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got.UpdateBy != "users/carol" || got.CreateBy != "users/alice" {
		t.Fatalf("got create_by %s, update_by %s, want users/alice, users/carol", got.CreateBy, got.UpdateBy)
	}
}

func TestUpdateRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	orig := e.create(t, alice, "teams/acme", "API_KEY", "v1")
	for _, tc := range []struct {
		name  string
		req   secretstore.UpdateRequest
		field string
		rule  string
	}{
		{"NothingToUpdate", secretstore.UpdateRequest{}, "update_mask", "nothing to update"},
		{"UnknownPath", secretstore.UpdateRequest{Value: []byte("x"), UpdateMask: []string{"value", "name"}}, "update_mask", "paths[1] is not an updatable field"},
		{"MaskValueEmpty", secretstore.UpdateRequest{UpdateMask: []string{"value"}}, "value", "is required"},
		{"ValueTooLarge", secretstore.UpdateRequest{Value: make([]byte, 65537)}, "value", "at most 65536"},
		{"NUL", secretstore.UpdateRequest{Value: []byte(canary + "\x00")}, "value", "NUL"},
		{"LongDescription", secretstore.UpdateRequest{Description: strings.Repeat("x", 1025)}, "description", "at most 1024"},
		{"BadName", secretstore.UpdateRequest{Name: "teams/acme/API_KEY", Value: []byte("x")}, "name", "must be"},
		{"LongEtag", secretstore.UpdateRequest{Value: []byte("x"), Etag: strings.Repeat("e", 129)}, "etag", "at most 128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			if req.Name == "" {
				req.Name = "teams/acme/secrets/API_KEY"
			}
			_, err := e.svc.Update(context.Background(), alice, req)
			wantField(t, err, tc.field, tc.rule)
			if strings.Contains(err.Error(), canary) {
				t.Fatalf("error %q contains the value", err)
			}
			got, err := e.svc.Get(context.Background(), alice, "teams/acme/secrets/API_KEY")
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(*got) != fmt.Sprint(*orig) {
				t.Fatalf("secret changed: got %+v, want %+v", *got, *orig)
			}
		})
	}
}

func TestEtag(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	orig := e.create(t, alice, "teams/acme", "API_KEY", "v1")
	upd, err := e.svc.Update(ctx, alice, secretstore.UpdateRequest{Name: "teams/acme/secrets/API_KEY", Value: []byte("v2"), Etag: orig.Etag})
	if err != nil {
		t.Fatalf("update with the current etag: %v", err)
	}
	_, err = e.svc.Update(ctx, alice, secretstore.UpdateRequest{Name: "teams/acme/secrets/API_KEY", Value: []byte("v3"), Etag: orig.Etag})
	wantKind(t, err, errs.KindFailedPrecondition)
	if !strings.Contains(err.Error(), "etag mismatch") {
		t.Errorf("error %q does not say etag mismatch", err)
	}
	err = e.svc.Delete(ctx, alice, secretstore.DeleteRequest{Name: "teams/acme/secrets/API_KEY", Etag: orig.Etag})
	wantKind(t, err, errs.KindFailedPrecondition)
	if v, sec := e.value(t, secretstore.Team("acme"), "API_KEY"); v != "v2" || sec.ValueVersion != 2 || sec.Etag != upd.Etag {
		t.Fatalf("after refused update and delete: got value %q version %d etag %s, want v2, 2, %s", v, sec.ValueVersion, sec.Etag, upd.Etag)
	}
	if err := e.svc.Delete(ctx, alice, secretstore.DeleteRequest{Name: "teams/acme/secrets/API_KEY", Etag: upd.Etag}); err != nil {
		t.Fatalf("delete with the current etag: %v", err)
	}
	_, err = e.svc.Get(ctx, alice, "teams/acme/secrets/API_KEY")
	wantKind(t, err, errs.KindNotFound)
}

func TestConcurrentValueUpdates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	orig := e.create(t, alice, "teams/acme", "API_KEY", "v0")
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := e.svc.Update(ctx, alice, secretstore.UpdateRequest{Name: "teams/acme/secrets/API_KEY", Value: fmt.Appendf(nil, "v%d", i+1)}); err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	v, sec := e.value(t, secretstore.Team("acme"), "API_KEY")
	if sec.ValueVersion != 1+n {
		t.Errorf("ValueVersion after %d concurrent updates: got %d, want %d", n, sec.ValueVersion, 1+n)
	}
	if v == "v0" || !strings.HasPrefix(v, "v") {
		t.Errorf("value: got %q, want one of the updates", v)
	}

	// With the same etag, exactly one wins.
	e2 := newEnv(t)
	orig = e2.create(t, alice, "teams/acme", "API_KEY", "v0")
	errc := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errc[i] = e2.svc.Update(ctx, alice, secretstore.UpdateRequest{Name: "teams/acme/secrets/API_KEY", Value: []byte("x"), Etag: orig.Etag})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errc {
		if err == nil {
			won++
		} else if errs.KindOf(err) != errs.KindFailedPrecondition {
			t.Errorf("conditional update: got %v, want FailedPrecondition", err)
		}
	}
	if won != 1 {
		t.Fatalf("conditional updates with one etag that won: got %d, want 1", won)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("S%02d", i)
		if i%3 == 0 {
			name = strings.ToLower(name)
		}
		e.create(t, alice, "teams/acme", name, "v")
		want = append(want, name)
	}
	e.create(t, root, "teams/acme-2", "OTHER", "v") // not listed under teams/acme
	for _, size := range []int{1, 7, 10, 25, 0, 1000, 5000} {
		t.Run(fmt.Sprintf("page_size=%d", size), func(t *testing.T) {
			var got []string
			tok := ""
			for pages := 0; ; pages++ {
				if pages > 30 {
					t.Fatal("too many pages")
				}
				page, err := e.svc.List(ctx, bob, secretstore.ListRequest{Parent: "teams/acme", PageSize: size, PageToken: tok})
				if err != nil {
					t.Fatal(err)
				}
				if size > 0 && len(page.Secrets) > size {
					t.Fatalf("page of %d, want at most %d", len(page.Secrets), size)
				}
				got = append(got, secretNames(page.Secrets)...)
				if tok = page.NextPageToken; tok == "" {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
	page, err := e.svc.List(ctx, alice, secretstore.ListRequest{Parent: "teams/acme", PageSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		req   secretstore.ListRequest
		field string
	}{
		{"GarbageToken", secretstore.ListRequest{Parent: "teams/acme", PageToken: "garbage!"}, "page_token"},
		{"Base64Garbage", secretstore.ListRequest{Parent: "teams/acme", PageToken: "eyJ4IjoxfQ"}, "page_token"},
		{"TokenOfOtherParent", secretstore.ListRequest{Parent: "teams/acme-2", PageToken: page.NextPageToken}, "page_token"},
		{"NegativeSize", secretstore.ListRequest{Parent: "teams/acme", PageSize: -1}, "page_size"},
		{"BadParent", secretstore.ListRequest{Parent: "teams/acme/secrets"}, "parent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.List(ctx, root, tc.req)
			wantField(t, err, tc.field, "")
		})
	}
	t.Run("AvailableTokenRefused", func(t *testing.T) {
		av, err := e.svc.ListAvailable(ctx, alice, secretstore.ListAvailableRequest{PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.List(ctx, alice, secretstore.ListRequest{Parent: "teams/acme", PageToken: av.NextPageToken})
		wantField(t, err, "page_token", "")
	})
}

func TestListAvailable(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, team := range []string{"acme", "beta", "gamma"} {
		for _, n := range []string{"B", "a", "C"} {
			e.create(t, root, "teams/"+team, n+"_"+strings.ToUpper(team), "v")
		}
	}
	e.create(t, alice, "users/me", "ALICE_TOKEN", "v")
	e.create(t, alice, "users/me", "ANOTHER", "v")
	e.create(t, bob, "users/me", "BOB_TOKEN", "v")
	// One name in three owners, in three cases, and names that sort just
	// before and after it: a page may end between any two of them.
	e.create(t, root, "teams/acme", "Shared", "v")
	e.create(t, root, "teams/beta", "SHARED", "v")
	e.create(t, root, "teams/beta", "SHARECZ", "v")
	e.create(t, alice, "users/me", "shared", "v")
	e.create(t, alice, "users/me", "SHARED_X", "v")

	// The order `oz secret list` prints: by name without regard to case
	// (bytes of the upper case: '_' after letters), then team before
	// personal, then team name.
	want := []string{
		"users/alice/ALICE_TOKEN", "users/alice/ANOTHER", "a_ACME", "teams/beta/a_BETA",
		"B_ACME", "teams/beta/B_BETA", "C_ACME", "teams/beta/C_BETA",
		"teams/beta/SHARECZ", "Shared", "teams/beta/SHARED", "users/alice/shared", "users/alice/SHARED_X",
	}
	for _, size := range []int{1, 2, 3, 7, 9, 10, 11, 12, 13, 14, 0} {
		t.Run(fmt.Sprintf("page_size=%d", size), func(t *testing.T) {
			var got []string
			tok := ""
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatal("too many pages")
				}
				page, err := e.svc.ListAvailable(ctx, alice, secretstore.ListAvailableRequest{PageSize: size, PageToken: tok})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, secretNames(page.Secrets)...)
				if tok = page.NextPageToken; tok == "" {
					break
				}
				if len(page.Secrets) == 0 {
					t.Fatal("an empty page with a next page token")
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
	_, err := e.svc.ListAvailable(ctx, alice, secretstore.ListAvailableRequest{PageToken: "nope"})
	wantField(t, err, "page_token", "")
}

func TestUnsealValues(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, alice, "teams/acme", "API_KEY", canary)
	e.create(t, alice, "teams/acme", "DB_URL", "postgres://x\nmulti")
	if _, err := e.svc.Update(ctx, alice, secretstore.UpdateRequest{Name: "teams/acme/secrets/DB_URL", Value: []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	vals, missing, err := e.svc.UnsealValues(ctx, secretstore.Team("acme"), []string{"DB_URL", "api_key", "NOPE", "API_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(missing, []string{"api_key", "NOPE"}) {
		t.Errorf("missing: got %v, want [api_key NOPE]", missing)
	}
	if len(vals) != 2 || vals[0].Name != "DB_URL" || string(vals[0].Value.Bytes()) != "v2" || vals[0].ValueVersion != 2 ||
		vals[1].Name != "API_KEY" || string(vals[1].Value.Bytes()) != canary || vals[1].ValueVersion != 1 {
		t.Fatalf("values: got %d values %+v", len(vals), vals)
	}

	// The plaintext does not print, log or marshal.
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("unsealed", "value", vals[1].Value, "all", vals)
	js, _ := json.Marshal(vals)
	for what, s := range map[string]string{
		"%v":   fmt.Sprintf("%v", vals),
		"%+v":  fmt.Sprintf("%+v", vals[1]),
		"%#v":  fmt.Sprintf("%#v", vals[1]),
		"%s":   fmt.Sprintf("%s", vals[1].Value),
		"%x":   fmt.Sprintf("%x", vals[1].Value),
		"%q":   fmt.Sprintf("%q", vals[1].Value),
		"json": string(js),
		"slog": logs.String(),
	} {
		if strings.Contains(s, canary) || strings.Contains(s, fmt.Sprintf("%x", canary)) {
			t.Errorf("%s shows the value: %s", what, s)
		}
	}
}

func TestSealedValueIsBoundToItsRecord(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, alice, "teams/acme", "API_KEY", canary)
	e.create(t, alice, "teams/acme", "OTHER", "other")
	e.create(t, root, "teams/acme-2", "API_KEY", "x")
	e.create(t, alice, "users/me", "API_KEY", "mine")
	if v, _ := e.value(t, secretstore.Team("acme"), "API_KEY"); v != canary {
		t.Fatalf("round trip: got %q, want the canary", v)
	}
	src, err := e.store.Get(ctx, secretstore.Team("acme"), "API_KEY")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		owner secretstore.Owner
		id    string
		bump  bool
	}{
		{"OtherName", secretstore.Team("acme"), "OTHER", false},
		{"OtherTeam", secretstore.Team("acme-2"), "API_KEY", false},
		{"OtherOwnerKind", secretstore.User("alice"), "API_KEY", false},
		{"OtherVersion", secretstore.Team("acme"), "API_KEY", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Move the sealed value into the other record, as someone with
			// write access to the database file could.
			moved, err := e.store.Update(ctx, tc.owner, tc.id, func(sec *secretstore.Secret) (*auditv1.Event, error) {
				sec.Value = src.Value.Clone()
				if tc.bump {
					sec.ValueVersion++
				}
				return storetest.NewEvent(audit.ActionSecretUpdate, sec), nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.OpenValue(moved); !errors.Is(err, keyring.ErrOpen) {
				t.Fatalf("open of a moved ciphertext: got %v, want keyring.ErrOpen", err)
			}
			if _, _, err := e.svc.UnsealValues(ctx, tc.owner, []string{tc.id}); err == nil {
				t.Fatal("UnsealValues of a moved ciphertext: got no error")
			} else if strings.Contains(err.Error(), canary) {
				t.Fatalf("error %q contains the value", err)
			}
		})
	}
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, n := range []string{"A", "B", "C"} {
		e.create(t, alice, "teams/acme", n, "value of "+n)
	}
	e.create(t, bob, "users/me", "MINE", "bob's")
	before := map[string]*secretstore.Secret{}
	for _, ref := range []struct {
		o secretstore.Owner
		n string
	}{{secretstore.Team("acme"), "A"}, {secretstore.Team("acme"), "B"}, {secretstore.Team("acme"), "C"}, {secretstore.User("bob"), "MINE"}} {
		sec, _ := e.store.Get(ctx, ref.o, ref.n)
		before[sec.ResourceName()] = sec
	}
	if _, err := e.keys.Rotate(); err != nil {
		t.Fatal(err)
	}
	// A secret created after the rotation is already on the new key.
	e.create(t, alice, "teams/acme", "D", "value of D")

	res, err := e.svc.Rewrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Scanned != 5 || res.Rewrapped != 4 {
		t.Fatalf("Rewrap: got %+v, want 5 scanned, 4 rewrapped", res)
	}
	for name, b := range before {
		o, id, _ := secretstore.ParseName("name", name)
		v, after := e.value(t, o, id)
		if after.Value.KEKID != "k2" {
			t.Errorf("%s: KEKID got %q, want k2", name, after.Value.KEKID)
		}
		if !bytes.Equal(after.Value.Ciphertext, b.Value.Ciphertext) {
			t.Errorf("%s: Rewrap changed the value's ciphertext", name)
		}
		if after.Etag != b.Etag || !after.UpdateTime.Equal(b.UpdateTime) || after.ValueVersion != b.ValueVersion {
			t.Errorf("%s: Rewrap changed metadata", name)
		}
		if !strings.HasPrefix(v, "value of") && v != "bob's" {
			t.Errorf("%s: value after rewrap: got %q", name, v)
		}
	}
	res, err = e.svc.Rewrap(ctx)
	if err != nil || res.Rewrapped != 0 {
		t.Fatalf("second Rewrap: got %+v, %v, want nothing rewrapped", res, err)
	}
}

func TestServiceLogsNoValue(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, alice, "teams/acme", "API_KEY", canary)
	if _, err := e.svc.Update(ctx, alice, secretstore.UpdateRequest{Name: "teams/acme/secrets/API_KEY", Value: []byte(canary + "2")}); err != nil {
		t.Fatal(err)
	}
	_, _ = e.svc.Create(ctx, alice, secretstore.CreateRequest{Parent: "teams/acme", SecretID: "B", Value: []byte(canary + "\x00")})
	if _, _, err := e.svc.UnsealValues(ctx, secretstore.Team("acme"), []string{"API_KEY"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Delete(ctx, alice, secretstore.DeleteRequest{Name: "teams/acme/secrets/API_KEY"}); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "secret created") || !strings.Contains(logs, "secret deleted") {
		t.Fatalf("expected mutation logs, got %s", logs)
	}
	if strings.Contains(logs, "CANARY") {
		t.Fatalf("logs contain the value: %s", logs)
	}
}

func TestNonUserCallersRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.create(t, alice, "teams/acme", "API_KEY", "v")
	runner := &auth.Principal{Kind: auth.KindRunner, Name: "runners/r1", ID: "r1", Teams: map[string]auth.Role{"acme": auth.RoleAdmin}}
	_, err := e.svc.Get(ctx, runner, "teams/acme/secrets/API_KEY")
	wantKind(t, err, errs.KindPermissionDenied)
	_, err = e.svc.Get(ctx, nil, "teams/acme/secrets/API_KEY")
	wantKind(t, err, errs.KindUnauthenticated)
}
