package edge

import (
	"net/http"
	"strings"
)

// The REST API's 401 carries an RFC 6750 challenge in WWW-Authenticate.
// grpc-gateway would copy the backend's message into the header as it is;
// that message may hold characters a header must not ("Bearer oz_…" has a
// non-ASCII ellipsis) and is not a challenge a client can parse.

// realm names the protection space of every route.
const realm = "oz"

// maxErrorDescription bounds the error_description copied from a message.
const maxErrorDescription = 200

// bearerChallenge returns the WWW-Authenticate value of a 401 answering a
// request whose Authorization header is authorization, msg being the
// backend's Unauthenticated message. A request without a bearer token gets
// no error code (RFC 6750 §3.1: the request lacked authentication); one
// whose token was refused gets error="invalid_token" and the message as its
// error_description.
func bearerChallenge(authorization, msg string) string {
	if scheme, _, _ := strings.Cut(strings.TrimSpace(authorization), " "); !strings.EqualFold(scheme, "Bearer") {
		return `Bearer realm="` + realm + `"`
	}
	c := `Bearer realm="` + realm + `", error="invalid_token"`
	if d := errorDescription(msg); d != "" {
		c += `, error_description="` + d + `"`
	}
	return c
}

// errorDescription makes msg a valid error_description: RFC 6750 §3 allows
// only %x20-21 / %x23-5B / %x5D-7E, that is printable ASCII without '"' and
// '\'. Common non-ASCII punctuation is spelt in ASCII, quotes become
// apostrophes, anything else becomes '?'; runs of spaces become one.
func errorDescription(msg string) string {
	var b strings.Builder
	for _, r := range msg {
		switch {
		case r == '"':
			b.WriteByte('\'')
		case r == '\\':
			b.WriteByte('/')
		case r == '…':
			b.WriteString("...")
		case r == '—' || r == '–':
			b.WriteByte('-')
		case r == '‘' || r == '’' || r == '“' || r == '”':
			b.WriteByte('\'')
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r >= 0x20 && r <= 0x7e:
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
	}
	d := strings.Join(strings.Fields(b.String()), " ")
	if len(d) > maxErrorDescription {
		d = strings.TrimSpace(d[:maxErrorDescription-3]) + "..."
	}
	return d
}

// challengeWriter sets the challenge on a 401 as it is written, replacing
// what grpc-gateway's error handler put there.
type challengeWriter struct {
	http.ResponseWriter
	authorization string
	msg           string
}

func (w challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", bearerChallenge(w.authorization, w.msg))
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w challengeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
