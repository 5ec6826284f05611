package directory

import (
	"context"
	"errors"
	"fmt"
	"slices"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// BootstrapAdmin makes sure the directory has a system admin. When it has
// none, it makes user id one (creating the user) and returns a new
// non-expiring token for it with the bearer token; when it has one, it
// changes nothing and returns an empty bearer token.
//
// It checks no caller: it is for the process that owns the store, at start.
// Returns Invalid (field user_id).
func (d *Directory) BootstrapAdmin(ctx context.Context, id string) (Token, string, error) {
	if err := checkUserID(id); err != nil {
		return Token{}, "", err
	}
	for range 5 {
		has, err := d.hasSystemAdmin(ctx)
		if err != nil || has {
			return Token{}, "", err
		}
		tok, bearer, err := d.issueAdmin(ctx, id, "bootstrap token (ozresolverd --bootstrap-token-file)", true)
		if i := resolver.Conflict(err); i == 0 || i == 1 {
			continue // another process bootstrapped meanwhile: look again
		}
		return tok, bearer, err
	}
	return Token{}, "", errors.New("bootstrap: the directory kept changing")
}

// IssueAdminToken makes user id a system admin (creating the user when it
// does not exist) and returns a new non-expiring token for it with the
// bearer token.
//
// It checks no caller: it is for recovery by whoever holds the store
// (`ozresolverd bootstrap`). Returns Invalid (fields user_id, description).
func (d *Directory) IssueAdminToken(ctx context.Context, id, description string) (Token, string, error) {
	if err := checkUserID(id); err != nil {
		return Token{}, "", err
	}
	if err := resolver.CheckDescription(description); err != nil {
		return Token{}, "", err
	}
	for range 5 {
		tok, bearer, err := d.issueAdmin(ctx, id, description, false)
		if resolver.Conflict(err) == 0 {
			continue // the user changed meanwhile: read it again
		}
		return tok, bearer, err
	}
	return Token{}, "", fmt.Errorf("issue admin token: user %q kept changing", id)
}

// issueAdmin creates or promotes user id as a system admin and issues a
// non-expiring token for it, in one write. Its first condition guards the
// user record as read; a *ConflictError with index 0 means it changed.
//
// For the first start's bootstrap, the write is also the store's only
// bootstrap (its second condition, index 1, is that none happened yet),
// and a user found already a system admin gets no token: between the
// caller's look for a system admin and this write, another process (or
// goroutine) may have bootstrapped.
func (d *Directory) issueAdmin(ctx context.Context, id, description string, bootstrap bool) (Token, string, error) {
	rec, raw, err := d.userRecord(ctx, id)
	if bootstrap && err == nil && rec.SystemAdmin {
		return Token{}, "", nil
	}
	now := d.s.Now()
	var cond kv.Cond
	var writes []kv.Write
	switch {
	case resolver.IsNotFound(err):
		rec = userRecord{ID: id, CreateTime: now}
		cond = kv.Absent(resolver.UserKey(id))
	case err != nil:
		return Token{}, "", err
	default:
		cond = kv.Equal(resolver.UserKey(id), raw)
	}
	// Events: the user's creation or promotion, then the token. The actor
	// is ozresolverd itself (no caller).
	var evs []*auditv1.Event
	if !rec.SystemAdmin {
		action := resolver.ActionUserUpdate
		if raw == nil {
			action = resolver.ActionUserCreate
		}
		evs = append(evs, d.s.Event(ctx, action, resolver.UserName(id), "", map[string]string{resolver.DetailSystemAdmin: "true"}))
		rec.SystemAdmin = true
		writes = []kv.Write{kv.Put(resolver.UserKey(id), resolver.Encode(rec)), kv.Put(resolver.SysadminKey(id), resolver.Marker)}
	}
	conds := []kv.Cond{cond}
	if bootstrap {
		conds = append(conds, kv.Absent(resolver.BootstrapKey))
		writes = append(writes, kv.Put(resolver.BootstrapKey, resolver.Marker))
	}
	tok := Token{Principal: resolver.UserPrincipal(id), Description: description, CreateTime: now}
	return d.issue(ctx, tok, conds, writes, func(t Token) []*auditv1.Event {
		return append(slices.Clone(evs), d.tokenEvent(ctx, resolver.ActionTokenCreate, t))
	})
}
