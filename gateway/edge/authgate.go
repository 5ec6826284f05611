package edge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ozsecrets/oz/gateway/edge/sourcelimit"
)

// The auth gate limits failed authentication per source address, at the
// edge, so that a source guessing or replaying tokens cannot keep the
// backends (and their audit logs) busy. The backends decide who is
// authenticated; the gate only counts their answers:
//
//   - a request whose answer is Unauthenticated (401) is a failure of its
//     source; each source may fail AuthFailureLimit.Burst times in a row,
//     then PerMinute times a minute;
//   - a source with no failure left is refused (429, ResourceExhausted)
//     before anything is forwarded, unless its request carries a token the
//     backends accepted recently: authenticated traffic is never limited,
//     not even from an address shared with someone failing;
//   - a request with a token not known to be good reserves a failure before
//     it is forwarded and gets it back once the backend answers otherwise,
//     so that many requests in flight at once cannot overdraw the budget.

// Defaults of AuthFailureLimit.
const (
	DefaultAuthFailuresPerMinute = 30
	DefaultAuthFailureBurst      = 20
)

// knownTokenTTL is how long a token the backends accepted lets its requests
// past a refusing gate; knownTokensMax bounds how many are remembered.
const (
	knownTokenTTL  = 10 * time.Minute
	knownTokensMax = 10000
)

// AuthFailureLimit configures the limit on failed authentications per
// source address. The zero value means the defaults.
type AuthFailureLimit struct {
	// PerMinute is how many failures a source may make a minute, once its
	// burst is spent. Zero means DefaultAuthFailuresPerMinute.
	PerMinute int
	// Burst is how many failures a source may make in a row. Zero means
	// DefaultAuthFailureBurst.
	Burst int
	// Off turns the limit off.
	Off bool
}

// authGate applies an AuthFailureLimit. A nil gate admits everything.
type authGate struct {
	failures *sourcelimit.Failures
	known    *knownTokens
	now      func() time.Time
}

func newAuthGate(l AuthFailureLimit) *authGate {
	if l.Off {
		return nil
	}
	if l.PerMinute <= 0 {
		l.PerMinute = DefaultAuthFailuresPerMinute
	}
	if l.Burst <= 0 {
		l.Burst = DefaultAuthFailureBurst
	}
	return &authGate{
		failures: sourcelimit.NewFailures(l.PerMinute, l.Burst),
		known:    newKnownTokens(),
		now:      time.Now,
	}
}

// outcome is what a request admitted by the gate turned out to be.
type outcome int

const (
	neither         outcome = iota // refused for another reason, or failed in transit
	authenticated                  // the backend accepted the token
	unauthenticated                // the backend refused the token
)

// admit decides whether a request from remoteAddr with the given
// Authorization value may be forwarded. When it may, it returns settle,
// which must be called with the request's outcome at least once (later
// calls do nothing). When it may not, settle is nil and retryAfter says in
// how many whole seconds the source may try again.
func (g *authGate) admit(remoteAddr, authorization string) (settle func(outcome), retryAfter int64) {
	if g == nil {
		return func(outcome) {}, 0
	}
	source := sourcelimit.Key(remoteAddr)
	token := bearerToken(authorization)
	var once sync.Once
	if token != "" && g.known.has(token, g.now()) {
		return func(o outcome) {
			once.Do(func() {
				if o == unauthenticated { // revoked or expired since
					g.known.forget(token)
					g.failures.Charge(source, g.now())
				}
			})
		}, 0
	}
	ok, wait := g.failures.Take(source, g.now())
	if !ok {
		return nil, retryAfterSeconds(wait)
	}
	return func(o outcome) {
		once.Do(func() {
			switch o {
			case unauthenticated:
				return // the reserved failure is spent
			case authenticated:
				if token != "" {
					g.known.add(token, g.now())
				}
			}
			g.failures.Refund(source, g.now())
		})
	}, 0
}

// refusal is the gate's answer to a source with no failure left: the
// message says when to retry, as REST's Retry-After header does, and a
// RetryInfo detail carries the delay for programs.
func refusal(retryAfter int64) error {
	st := status.New(codes.ResourceExhausted,
		fmt.Sprintf("too many failed authentications from this address; retry in %d s", retryAfter))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(retryAfter) * time.Second)}); err == nil {
		st = d
	}
	return st.Err()
}

// retryAfterSeconds rounds wait up to whole seconds, at least 1.
func retryAfterSeconds(wait time.Duration) int64 {
	return max(1, int64(math.Ceil(wait.Seconds())))
}

// bearerToken returns the token of an "Authorization: Bearer …" value, or
// "" when there is none.
func bearerToken(authorization string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// knownTokens remembers tokens the backends accepted recently, as keyed
// hashes (the key is random, per process): the gate never keeps a token.
type knownTokens struct {
	key []byte

	mu     sync.Mutex
	expiry map[[sha256.Size]byte]time.Time
}

func newKnownTokens() *knownTokens {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	return &knownTokens{key: key, expiry: make(map[[sha256.Size]byte]time.Time)}
}

func (k *knownTokens) sum(token string) [sha256.Size]byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(token))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

func (k *knownTokens) has(token string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	exp, ok := k.expiry[k.sum(token)]
	return ok && now.Before(exp)
}

func (k *knownTokens) add(token string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.expiry) >= knownTokensMax {
		for h, exp := range k.expiry {
			if !now.Before(exp) {
				delete(k.expiry, h)
			}
		}
		for h := range k.expiry { // still full: forget one at random
			if len(k.expiry) < knownTokensMax {
				break
			}
			delete(k.expiry, h)
		}
	}
	k.expiry[k.sum(token)] = now.Add(knownTokenTTL)
}

func (k *knownTokens) forget(token string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.expiry, k.sum(token))
}
