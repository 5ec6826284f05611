package grpcapi_test

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	"github.com/ozsecrets/oz/services/resolver"
)

// withKey is withToken sending the idempotency key too.
func withKey(t *testing.T, token, key string) context.Context {
	return metadata.AppendToOutgoingContext(withToken(t, token), "idempotency-key", key)
}

// countEvents counts the waiting events of action, and acknowledges them.
func countEvents(t *testing.T, e *env, action string) int {
	t.Helper()
	n := 0
	for _, ev := range drainEvents(t, e.dir) {
		if ev.GetAction() == action {
			n++
		}
	}
	return n
}

// TestIdempotentWrites: the resolver's writes sent again with their
// idempotency key answer as the first time and write nothing more; a key
// sent with another request is refused naming it; an answer holding a
// credential is not kept, and its key sent again makes no second one.
func TestIdempotentWrites(t *testing.T) {
	f := newFixture(t)
	e := f.serve(t)
	c := e.dial(t, "gateway")
	drainEvents(t, e.dir)

	t.Run("Membership", func(t *testing.T) {
		req := &scopev1.CreateMembershipRequest{Parent: "teams/red", User: "users/newbie", Role: scopev1.Role_ROLE_MEMBER}
		first, err := c.dir.CreateMembership(withKey(t, f.tokens[sysAdmin], "m-1"), req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.dir.CreateMembership(withKey(t, f.tokens[sysAdmin], "m-1"), req)
		if err != nil || !proto.Equal(again, first) {
			t.Fatalf("sent again: %v, %v; want %v", again, err, first)
		}
		if n := countEvents(t, e, resolver.ActionMembershipCreate); n != 1 {
			t.Errorf("membership.create events: %d, want 1", n)
		}
		_, err = c.dir.CreateMembership(withToken(t, f.tokens[sysAdmin]), req)
		wantCode(t, err, codes.AlreadyExists) // what the key spares a retry
		other := proto.Clone(req).(*scopev1.CreateMembershipRequest)
		other.Role = scopev1.Role_ROLE_ADMIN
		_, err = c.dir.CreateMembership(withKey(t, f.tokens[sysAdmin], "m-1"), other)
		wantCode(t, err, codes.InvalidArgument)
		if got := fieldOf(err); got != "idempotency-key" {
			t.Errorf("the key with another request: field %q, want idempotency-key", got)
		}
		// Another caller's key of the same name is its own: decided afresh
		// (a team admin must invite).
		_, err = c.dir.CreateMembership(withKey(t, f.tokens[teamAdmin], "m-1"), req)
		wantCode(t, err, codes.FailedPrecondition)
	})

	t.Run("Delete", func(t *testing.T) {
		req := &scopev1.DeleteMembershipRequest{Name: "teams/red/members/newbie"}
		for i := range 2 {
			if _, err := c.dir.DeleteMembership(withKey(t, f.tokens[teamAdmin], "d-1"), req); err != nil {
				t.Fatalf("delete %d: %v, want success", i+1, err)
			}
		}
		if n := countEvents(t, e, resolver.ActionMembershipDelete); n != 1 {
			t.Errorf("membership.delete events: %d, want 1", n)
		}
	})

	t.Run("TokenWithheld", func(t *testing.T) {
		req := &scopev1.CreateTokenRequest{Principal: "users/max"}
		first, err := c.tokens.CreateToken(withKey(t, f.tokens[sysAdmin], "t-1"), req)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.tokens.CreateToken(withKey(t, f.tokens[sysAdmin], "t-1"), req)
		wantCode(t, err, codes.FailedPrecondition)
		if n := countEvents(t, e, resolver.ActionTokenCreate); n != 1 {
			t.Errorf("token.create events: %d, want 1", n)
		}
		raw, err := e.store.Scan(context.Background(), "idempotency/", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range raw {
			if secret := secretPart(t, first.GetBearerToken()); bytes.Contains(r.Value, []byte(secret)) {
				t.Errorf("an idempotency record holds the token: %s", r.Key)
			}
		}
	})
}
