package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// restError is grpc-gateway's error handler: its default, after hiding
// what only the gateway's own errors can leak (see answered.go), with an
// RFC 6750 challenge on a 401.
func (s *Server) restError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if !backendAnswered(ctx) {
		var withStatus *runtime.HTTPStatusError
		if errors.As(err, &withStatus) {
			err = &runtime.HTTPStatusError{HTTPStatus: withStatus.HTTPStatus, Err: s.ownError(ctx, withStatus.Err)}
		} else {
			err = s.ownError(ctx, err)
		}
	}
	// A 401's WWW-Authenticate is a bearer challenge, not the message
	// grpc-gateway copies there (challenge.go).
	msg := err
	var withStatus *runtime.HTTPStatusError
	if errors.As(err, &withStatus) {
		msg = withStatus.Err
	}
	w = challengeWriter{ResponseWriter: w, authorization: r.Header.Get("Authorization"), msg: status.Convert(msg).Message()}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// ownError rewrites an error the gateway made itself, not a backend.
func (s *Server) ownError(ctx context.Context, err error) error {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable:
		method, _ := runtime.RPCMethod(ctx)
		return hideUnavailable(ctx, s.log, backendFor(method), err)
	case codes.InvalidArgument:
		if len(st.Details()) > 0 {
			return err // built by the gateway with field details: safe
		}
		return status.Error(codes.InvalidArgument, safeInputMessage(st.Message()))
	}
	return err
}

// Messages about the request that grpc-gateway (and the protojson decoder
// under it) produce quote the input: a base64 error quotes the text a user
// pasted as the value. safeInputMessage rebuilds each known message from
// the names of fields, never from what the request held; anything it does
// not recognise becomes a generic message. Field names are only taken when
// they are identifiers (\w+), so a crafted key cannot smuggle a value out.
var inputMessages = []struct {
	re   *regexp.Regexp
	make func(m []string) string
}{
	{regexp.MustCompile(`invalid value for (\w+) field (\w+)`), func(m []string) string { return m[2] + ": " + kindRule(m[1]) }},
	{regexp.MustCompile(`unknown field "(\w{1,64})"`), func(m []string) string { return m[1] + ": unknown field" }},
	{regexp.MustCompile(`duplicate field "?(\w{1,64})"?`), func(m []string) string { return m[1] + ": given more than once" }},
	{regexp.MustCompile(`^parsing (?:field|list|map key|map value) "(\w+)"`), func(m []string) string { return m[1] + ": invalid value" }},
	{regexp.MustCompile(`^too many values for field "(\w+)"`), func(m []string) string { return m[1] + ": only one value allowed" }},
	{regexp.MustCompile(`^type mismatch, parameter: (\w+),`), func(m []string) string { return m[1] + ": invalid value" }},
	{regexp.MustCompile(`^missing parameter (\w+)$`), func(m []string) string { return m[1] + ": required" }},
	{regexp.MustCompile(`request body too large`), func([]string) string { return "request body: too large" }},
	{regexp.MustCompile(`^request body: larger than \d+ bytes$`), func(m []string) string { return m[0] }},
	{regexp.MustCompile(`^request body: not received within [0-9a-zµ.]+$`), func(m []string) string { return m[0] }},
	{regexp.MustCompile(`i/o timeout|deadline exceeded`), func([]string) string { return "request body: not received in time" }},
	{regexp.MustCompile(`unexpected EOF|unexpected end of JSON`), func([]string) string { return "request body: incomplete JSON" }},
}

// genericInputMessage is the answer to input the gateway could not read
// for a reason it does not recognise.
const genericInputMessage = "request: the body or a parameter could not be read (JSON body with the API's field names; bytes fields in base64)"

func safeInputMessage(msg string) string {
	for _, im := range inputMessages {
		if m := im.re.FindStringSubmatch(msg); m != nil {
			return im.make(m)
		}
	}
	return genericInputMessage
}

// kindRule says what a JSON value of a field of the given protobuf kind
// must be.
func kindRule(kind string) string {
	switch kind {
	case "bytes":
		return "must be base64"
	case "string":
		return "must be a string"
	case "bool":
		return "must be true or false"
	case "enum":
		return "must be one of the value names of its enum"
	case "float", "double":
		return "must be a number"
	case "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64":
		return "must be an integer"
	case "message", "group":
		return "must be an object"
	}
	return "has an invalid value"
}

// routingError is grpc-gateway's routing error handler: a path served for
// other methods is 405 with Allow listing them (grpc-gateway answers 501).
func (s *Server) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
		return
	}
	allow := s.restMethods.allowed(r)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	runtime.HTTPError(ctx, mux, m, w, r, &runtime.HTTPStatusError{
		HTTPStatus: http.StatusMethodNotAllowed,
		Err:        status.Error(codes.Unimplemented, fmt.Sprintf("method not allowed on this path; allowed: %s", strings.Join(allow, ", "))),
	})
}

// restMethods finds the methods a REST path is served for, by routing a
// request for each method through a second mux holding the same routes,
// whose handlers only note that they matched: grpc-gateway does not expose
// its routing table.
type restMethods struct{ probe *runtime.ServeMux }

type probeKey struct{}

// probeMiddleware stands in for every handler of the probe mux.
func probeMiddleware(runtime.HandlerFunc) runtime.HandlerFunc {
	return func(_ http.ResponseWriter, r *http.Request, _ map[string]string) {
		if matched, ok := r.Context().Value(probeKey{}).(*bool); ok {
			*matched = true
		}
	}
}

// probeMethods are the methods REST routes use, in the order Allow lists them.
var probeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

func (rm restMethods) allowed(r *http.Request) []string {
	var allow []string
	for _, method := range probeMethods {
		matched := false
		req := r.Clone(context.WithValue(r.Context(), probeKey{}, &matched))
		req.Method = method
		req.Header = http.Header{} // no form content type: no POST→GET fallback
		req.Body = http.NoBody
		rm.probe.ServeHTTP(discard{}, req)
		if matched {
			allow = append(allow, method)
		}
	}
	return allow
}

// discard is a ResponseWriter that writes nowhere: probes answer nothing.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
