package directory_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
)

// TestSelfIssuedTokenBoundedByIssuer is the attack of issue 14: a token
// expiring in 10 minutes made a never-expiring one (or one for 10,000
// years) for the same user. A token issued for oneself now expires no
// later than the token it was issued with, and a later expiry is refused
// with an error naming the field and the bound, changing nothing.
func TestSelfIssuedTokenBoundedByIssuer(t *testing.T) {
	f := resolvertest.NewTeams(t)
	d, sys := f.D, f.Sys
	_, short, err := d.CreateToken(sys, resolver.UserPrincipal("max"), 10*time.Minute, "")
	idMust(t, err)
	maxCtx := resolvertest.Login(t, d, short)
	parentExpire := resolvertest.Start.Add(10 * time.Minute)

	for name, ttl := range map[string]time.Duration{
		"OneMinuteLonger":  11 * time.Minute,
		"TenThousandYears": time.Duration(1<<63 - 1), // what 10,000 years saturate to
	} {
		t.Run(name, func(t *testing.T) {
			before := f.Snapshot(t)
			_, bearer, err := d.CreateToken(maxCtx, resolver.UserPrincipal("max"), ttl, "")
			wantFieldErr(t, err, "ttl")
			if bearer != "" || strings.Contains(err.Error(), short) {
				t.Errorf("refusal returned a token or echoed the caller's")
			}
			if name == "OneMinuteLonger" && !strings.Contains(err.Error(), parentExpire.UTC().Format(time.RFC3339)) {
				t.Errorf("got %q, want it to name the bound %s", err, parentExpire.UTC().Format(time.RFC3339))
			}
			if after := f.Snapshot(t); len(after) != len(before) {
				t.Errorf("a refused token changed the store: %d records, want %d", len(after), len(before))
			}
		})
	}
	t.Run("NoLifetimeGetsTheIssuers", func(t *testing.T) {
		tok, _, err := d.CreateToken(maxCtx, resolver.UserPrincipal("max"), 0, "")
		idMust(t, err)
		if !tok.ExpireTime.Equal(parentExpire) || !tok.Child() {
			t.Errorf("got expiry %v (child %v), want %v, a child of the issuer", tok.ExpireTime, tok.Child(), parentExpire)
		}
	})
	t.Run("ShorterIsFine", func(t *testing.T) {
		tok, _, err := d.CreateToken(maxCtx, resolver.UserPrincipal("max"), 5*time.Minute, "")
		idMust(t, err)
		if want := resolvertest.Start.Add(5 * time.Minute); !tok.ExpireTime.Equal(want) {
			t.Errorf("got expiry %v, want %v", tok.ExpireTime, want)
		}
	})
}

// TestMaxTokenLifetime: every token made with CreateToken, by a system
// admin too, lives at most the policy's maximum; a longer lifetime is
// refused naming the bound; none asked gets the maximum.
func TestMaxTokenLifetime(t *testing.T) {
	f := resolvertest.NewTeams(t)
	d, sys := f.D, f.Sys
	idMust(t, d.SetTokenPolicy(directory.TokenPolicy{MaxLifetime: 30 * 24 * time.Hour}))
	err := errOf2(d.CreateToken(sys, resolver.UserPrincipal("max"), 31*24*time.Hour, ""))
	wantFieldErr(t, err, "ttl")
	if !strings.Contains(err.Error(), "30 days") || !strings.Contains(err.Error(), "--max-token-lifetime") {
		t.Errorf("got %q, want it to name the bound (30 days) and its setting", err)
	}
	tok, _, err := d.CreateToken(sys, resolver.UserPrincipal("max"), 0, "")
	idMust(t, err)
	if want := resolvertest.Start.Add(30 * 24 * time.Hour); !tok.ExpireTime.Equal(want) {
		t.Errorf("no lifetime: got expiry %v, want %v", tok.ExpireTime, want)
	}
	if tok.Child() {
		t.Errorf("a token for another principal is not its issuer's child")
	}
	if err := d.SetTokenPolicy(directory.TokenPolicy{}); err == nil {
		t.Errorf("a zero maximum lifetime was accepted")
	}
}

// TestRevokeCascades: revoking a token revokes those issued from it for
// the same principal, and theirs (the child outlived its parent's
// revocation before), but not a token the holder issued for someone else;
// tokens without an issuer (made before issuers were recorded, or by a
// system admin for another user) keep working.
func TestRevokeCascades(t *testing.T) {
	f := resolvertest.NewTeams(t)
	d, sys := f.D, f.Sys
	ctx := context.Background()
	parent, parentBearer, err := d.CreateToken(sys, resolver.UserPrincipal("ann"), time.Hour, "")
	idMust(t, err)
	annCtx := resolvertest.Login(t, d, parentBearer)
	_, childBearer, err := d.CreateToken(annCtx, resolver.UserPrincipal("ann"), 0, "child")
	idMust(t, err)
	_, grandBearer, err := d.CreateToken(resolvertest.Login(t, d, childBearer), resolver.UserPrincipal("ann"), 0, "grandchild")
	idMust(t, err)
	_, siblingBearer, err := d.CreateToken(sys, resolver.UserPrincipal("ann"), 0, "from the admin")
	idMust(t, err)
	// ann is an admin of red: a token she issues for red's default agent
	// identity is that identity's own credential.
	_, agentBearer, err := d.CreateToken(annCtx, resolver.AgentPrincipal("red", "default"), 0, "")
	idMust(t, err)

	if _, err := d.RevokeToken(sys, parent.ID); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{"Parent": parentBearer, "Child": childBearer, "Grandchild": grandBearer} {
		if _, err := d.Authenticate(ctx, b); errs.KindOf(err) != errs.KindUnauthenticated {
			t.Errorf("%s after revoking the parent: got %v, want Unauthenticated", name, err)
		}
	}
	for name, b := range map[string]string{"OtherTokenOfTheUser": siblingBearer, "IssuedForAnAgent": agentBearer} {
		if _, err := d.Authenticate(ctx, b); err != nil {
			t.Errorf("%s after revoking the parent: got %v, want it to work", name, err)
		}
	}
	// A revoked token issues nothing: the child would escape the cascade.
	err = errOf2(d.CreateToken(annCtx, resolver.UserPrincipal("ann"), 0, ""))
	wantKind(t, err, errs.KindUnauthenticated)
}
