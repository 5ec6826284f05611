package secretstore_test

import (
	"context"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore"
)

// TestAuthorizationProperty checks the access rules (DESIGN §3) against a
// plain statement of them, over random callers, owners and operations:
//   - only people use the Service;
//   - team secrets: admins write, members read;
//   - personal secrets: their owner only, for everything;
//   - without access the answer is PermissionDenied, whether or not the
//     secret exists; with it, a missing secret is NotFound.
func TestAuthorizationProperty(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	teams := []string{"acme", "beta"}
	users := []string{"alice", "bob"}
	// Every owner has a secret named EXISTING.
	for _, team := range teams {
		e.create(t, root, "teams/"+team, "EXISTING", "v")
	}
	for _, u := range users {
		e.create(t, &auth.Principal{Kind: auth.KindUser, Name: "users/" + u, ID: u}, "users/me", "EXISTING", "v")
	}
	var n int

	rapid.Check(t, func(rt *rapid.T) {
		p := &auth.Principal{
			Kind:        rapid.SampledFrom([]auth.Kind{auth.KindUser, auth.KindUser, auth.KindRunner, auth.KindAgent}).Draw(rt, "kind"),
			ID:          rapid.SampledFrom(users).Draw(rt, "id"),
			SystemAdmin: rapid.Bool().Draw(rt, "sysadmin"),
			Teams:       map[string]auth.Role{},
		}
		p.Name = "users/" + p.ID
		for _, team := range teams {
			if r := rapid.SampledFrom([]auth.Role{auth.RoleNone, auth.RoleMember, auth.RoleAdmin}).Draw(rt, "role in "+team); r != auth.RoleNone {
				p.Teams[team] = r
			}
		}
		var owner secretstore.Owner
		if rapid.Bool().Draw(rt, "team owner") {
			owner = secretstore.Team(rapid.SampledFrom(teams).Draw(rt, "team"))
		} else {
			owner = secretstore.User(rapid.SampledFrom(users).Draw(rt, "user"))
		}
		op := rapid.SampledFrom([]string{"create", "get", "list", "update", "delete"}).Draw(rt, "op")
		exists := op != "create" && op != "list" && rapid.Bool().Draw(rt, "exists")

		write := op == "create" || op == "update" || op == "delete"
		allowed := p.Kind == auth.KindUser
		switch {
		case owner.Kind == secretstore.OwnerUser:
			allowed = allowed && owner.ID == p.ID
		case write:
			allowed = allowed && p.Teams[owner.ID] == auth.RoleAdmin
		default:
			allowed = allowed && p.Teams[owner.ID] >= auth.RoleMember
		}
		want := errs.KindPermissionDenied
		if allowed {
			want = -1 // success
			if op != "create" && op != "list" && !exists {
				want = errs.KindNotFound
			}
		}

		name := "MISSING"
		if exists {
			name = "EXISTING"
		}
		if exists && op == "delete" {
			// Delete a secret of its own, so EXISTING stays for the rest.
			n++
			name = fmt.Sprintf("DEL_%d", n)
			if _, err := e.svc.Create(ctx, ownerOf(owner), secretstore.CreateRequest{Parent: owner.String(), SecretID: name, Value: []byte("v")}); err != nil {
				rt.Fatal(err)
			}
		}
		resource := owner.String() + "/secrets/" + name
		var err error
		switch op {
		case "create":
			n++
			_, err = e.svc.Create(ctx, p, secretstore.CreateRequest{Parent: owner.String(), SecretID: fmt.Sprintf("NEW_%d", n), Value: []byte("v")})
		case "get":
			_, err = e.svc.Get(ctx, p, resource)
		case "list":
			_, err = e.svc.List(ctx, p, secretstore.ListRequest{Parent: owner.String()})
		case "update":
			_, err = e.svc.Update(ctx, p, secretstore.UpdateRequest{Name: resource, Description: "d"})
		case "delete":
			err = e.svc.Delete(ctx, p, secretstore.DeleteRequest{Name: resource})
		}
		switch {
		case want == -1 && err != nil:
			rt.Fatalf("%s %s as %s %v: got %v, want success", op, resource, p.Kind, p.Teams, err)
		case want != -1 && errs.KindOf(err) != want:
			rt.Fatalf("%s %s as %s %v: got %v, want %v", op, resource, p.Kind, p.Teams, err, want)
		}
	})
}

// ownerOf returns a principal that may write owner's secrets.
func ownerOf(o secretstore.Owner) *auth.Principal {
	if o.Kind == secretstore.OwnerUser {
		return &auth.Principal{Kind: auth.KindUser, Name: o.String(), ID: o.ID}
	}
	return root
}
