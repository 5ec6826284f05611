package directory

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ozsecrets/oz/services/internal/auth"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/resolver"
)

// User is a person.
type User struct {
	ID          string
	SystemAdmin bool
	CreateTime  time.Time
}

// Name is the user's resource name, "users/{user}".
func (u User) Name() string { return resolver.UserName(u.ID) }

// CreateUser creates user id, a system admin when systemAdmin is set.
// System admins only.
//
// Returns Invalid (field user_id; "me" is reserved), PermissionDenied,
// AlreadyExists.
func (d *Directory) CreateUser(ctx context.Context, id string, systemAdmin bool) (User, error) {
	if err := checkUserID(id); err != nil {
		return User{}, err
	}
	if _, err := resolver.RequireSystemAdmin(ctx); err != nil {
		return User{}, err
	}
	u := User{ID: id, SystemAdmin: systemAdmin, CreateTime: d.s.Now()}
	writes := []kv.Write{kv.Put(resolver.UserKey(id), resolver.Encode(userRecord{ID: u.ID, SystemAdmin: u.SystemAdmin, CreateTime: u.CreateTime}))}
	if systemAdmin {
		writes = append(writes, kv.Put(resolver.SysadminKey(id), resolver.Marker))
	}
	ev := d.s.Event(ctx, resolver.ActionUserCreate, u.Name(), "", map[string]string{resolver.DetailSystemAdmin: strconv.FormatBool(systemAdmin)})
	err := d.s.Apply(ctx, []kv.Cond{kv.Absent(resolver.UserKey(id))}, writes, ev)
	if resolver.Conflict(err) == 0 {
		return User{}, errs.E(errs.KindAlreadyExists, "user %q already exists", id)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

func checkUserID(id string) error {
	if err := resolver.CheckID("user_id", id); err != nil {
		return err
	}
	if id == resolver.Me {
		return errs.Field("user_id", `"me" is reserved: users/me names the caller`)
	}
	return nil
}

// GetUser returns user id. Callers are people: the user themself, their
// teammates and system admins.
//
// Returns Invalid (field user_id), PermissionDenied, NotFound.
func (d *Directory) GetUser(ctx context.Context, id string) (User, error) {
	if err := resolver.CheckID("user_id", id); err != nil {
		return User{}, err
	}
	p, err := resolver.Person(ctx)
	if err != nil {
		return User{}, err
	}
	if !p.SystemAdmin && !isUser(p, id) {
		mates, err := d.teammates(ctx, p, id)
		if err != nil {
			return User{}, err
		}
		if !mates {
			return User{}, resolver.Denied("only the user, their teammates and system admins may see user %q", id)
		}
	}
	return d.user(ctx, id)
}

func isUser(p *auth.Principal, id string) bool {
	return p.Kind == auth.KindUser && p.Name == resolver.UserName(id)
}

// teammates reports whether user id belongs to one of p's teams.
func (d *Directory) teammates(ctx context.Context, p *auth.Principal, id string) (bool, error) {
	ms, err := d.memberships(ctx, id)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if p.IsMember(m.Team) {
			return true, nil
		}
	}
	return false, nil
}

func (d *Directory) user(ctx context.Context, id string) (User, error) {
	u, _, err := d.userRecord(ctx, id)
	return u.user(), err
}

func (d *Directory) userRecord(ctx context.Context, id string) (userRecord, []byte, error) {
	var rec userRecord
	raw, err := d.s.Get(ctx, resolver.UserKey(id), &rec)
	if err != nil {
		if resolver.IsNotFound(err) {
			return rec, nil, errs.E(errs.KindNotFound, "user %q not found", id)
		}
		return rec, nil, fmt.Errorf("get user: %w", err)
	}
	return rec, raw, nil
}

// hasSystemAdmin reports whether any user is a system admin.
func (d *Directory) hasSystemAdmin(ctx context.Context) (bool, error) {
	kvs, err := d.s.KV().Scan(ctx, resolver.PrefixSysadmins, "", 1)
	if err != nil {
		return false, fmt.Errorf("look for a system admin: %w", err)
	}
	return len(kvs) > 0, nil
}
