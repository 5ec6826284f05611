package edge

import (
	"context"
	"net"
	"net/http"
	"net/textproto"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	// Services attach google.rpc.BadRequest (and other error details) to
	// their statuses; REST errors can only be marshalled to JSON when those
	// types are linked into the gateway.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"

	"github.com/ozsecrets/oz/lib/reqmeta"
	"github.com/ozsecrets/oz/lib/tracing"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// restService is a service reachable over REST. Its handlers are registered
// against the backend that routes names for it, so REST and native gRPC can
// never disagree on where a method goes.
type restService struct {
	name     string // full service name, e.g. "oz.secrets.v1.SecretService"
	register func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
}

// restServices lists the services with REST mappings (proto/http.yaml):
// every one of them, so that no route of the OpenAPI document is missing.
var restServices = []restService{
	{secretsv1.SecretService_ServiceDesc.ServiceName, secretsv1.RegisterSecretServiceHandler},
	{secretsv1.SealingKeyService_ServiceDesc.ServiceName, secretsv1.RegisterSealingKeyServiceHandler},
	{scopev1.DirectoryService_ServiceDesc.ServiceName, scopev1.RegisterDirectoryServiceHandler},
	{scopev1.TokenService_ServiceDesc.ServiceName, scopev1.RegisterTokenServiceHandler},
	{scopev1.AgentService_ServiceDesc.ServiceName, scopev1.RegisterAgentServiceHandler},
	{scopev1.EnvironmentService_ServiceDesc.ServiceName, scopev1.RegisterEnvironmentServiceHandler},
	{scopev1.RunnerService_ServiceDesc.ServiceName, scopev1.RegisterRunnerServiceHandler},
	{scopev1.RunService_ServiceDesc.ServiceName, scopev1.RegisterRunServiceHandler},
	{scopev1.IntegrationService_ServiceDesc.ServiceName, scopev1.RegisterIntegrationServiceHandler},
}

// optionalRESTService is a REST service whose backend may be left
// unconfigured: its routes then answer 503 (Unavailable), as its native
// gRPC methods do.
type optionalRESTService struct {
	name     string
	register func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error
}

// optionalRESTServices lists them (proto/http.yaml).
var optionalRESTServices = []optionalRESTService{
	{auditv1.AuditService_ServiceDesc.ServiceName, func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
		return auditv1.RegisterAuditServiceHandlerClient(ctx, mux, auditv1.NewAuditServiceClient(cc))
	}},
}

func (r optionalRESTService) backend() string { return backendFor("/" + r.name + "/") }

// backend returns the name of the backend that owns the service.
func (r restService) backend() string { return backendFor("/" + r.name + "/") }

// restClient is the value of x-oz-client on every REST call, so backends
// (and audit records) can tell how a request came in.
const restClient = "rest"

// newRESTMux returns grpc-gateway's mux with the handlers of restServices,
// and sets s.restMethods. Its error responses keep grpc-gateway's default
// shape: a JSON google.rpc.Status ({"code", "message", "details"}), with
// the HTTP status mapped from the gRPC code, and a 401 carrying an RFC 6750
// Bearer challenge in WWW-Authenticate; the gateway's own errors are made safe
// first (restError), and a path served for other methods is 405 with Allow.
func (s *Server) newRESTMux() (*runtime.ServeMux, error) {
	mux := runtime.NewServeMux(
		runtime.WithMetadata(restMetadata),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithMiddlewares(traceRoute, markAnswers),
		runtime.WithErrorHandler(s.restError),
		runtime.WithRoutingErrorHandler(s.routingError),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{
				// Every field the OpenAPI document lists is in a response,
				// with its type: "" for an empty string, [] for an empty
				// list, 0 and false. Unset message fields (a timestamp that
				// has not happened, an absent object) are left out rather
				// than sent as null, which the document's string and object
				// types do not allow.
				MarshalOptions: protojson.MarshalOptions{EmitDefaultValues: true},
				// grpc-gateway's default drops unknown fields; refusing
				// them means a misspelt field ("descripton") is a 400
				// naming it, not an update that silently does nothing.
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
			},
		}),
	)
	if err := registerREST(mux, s.conns); err != nil {
		return nil, err
	}
	probe := runtime.NewServeMux(
		runtime.WithMiddlewares(probeMiddleware),
		runtime.WithRoutingErrorHandler(func(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, int) {}),
	)
	if err := registerREST(probe, s.conns); err != nil {
		return nil, err
	}
	s.restMethods = restMethods{probe: probe}
	return mux, nil
}

// registerREST registers the handlers of every REST service on mux.
func registerREST(mux *runtime.ServeMux, conns map[string]*grpc.ClientConn) error {
	for _, svc := range restServices {
		// Register*Handler only uses ctx for nothing long-lived; the
		// connection's lifetime is the Server's.
		if err := svc.register(context.Background(), mux, conns[svc.backend()]); err != nil {
			return err
		}
	}
	for _, svc := range optionalRESTServices {
		var cc grpc.ClientConnInterface = unconfigured(svc.backend())
		if conn := conns[svc.backend()]; conn != nil {
			cc = conn
		}
		if err := svc.register(context.Background(), mux, cc); err != nil {
			return err
		}
	}
	return nil
}

// markAnswers gives each REST call a mark that tells its errors from the
// backend's apart from the gateway's own (answered.go).
func markAnswers(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		next(w, r.WithContext(withAnswerMark(r.Context())), params)
	}
}

// traceRoute names the request's span (if traced) after the route that
// matched, once grpc-gateway has matched it.
func traceRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if pattern, ok := runtime.HTTPPattern(r.Context()); ok {
			tracing.SetRoute(r.Context(), r.Method, pattern.String())
		}
		next(w, r, params)
	}
}

// restMetadata is added to every REST call. grpc-gateway lets these values
// replace any the request headers produced under the same keys, so a caller
// cannot claim another client, request id or source address through a
// header. The source (reqmeta.Peer) is the TCP peer's address.
func restMetadata(ctx context.Context, r *http.Request) metadata.MD {
	// Always set, so that a Grpc-Metadata-X-Oz-Peer header never stands.
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return metadata.Pairs(
		reqmeta.Client, restClient,
		requestIDKey, requestIDFrom(ctx),
		reqmeta.Peer, host,
	)
}

// incomingHeader is grpc-gateway's default header matcher (IANA permanent
// headers, forwarded as "grpcgateway-<name>") without Authorization:
// grpc-gateway always forwards it as "authorization" already, and a second
// copy of the bearer token under another key is one more place for it to
// leak from. Idempotency-Key goes to the services under its own name
// (reqmeta.IdempotencyKey), as native gRPC callers send it: they check it
// and answer a write sent again with it as the first time.
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "Authorization":
		return "", false
	case "Idempotency-Key":
		return reqmeta.IdempotencyKey, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// newHTTPMux routes everything that is not native gRPC.
func (s *Server) newHTTPMux(rest *runtime.ServeMux) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /openapi.json", s.serveOpenAPI)
	// The auth gate comes before the body is read: a refused source costs
	// no body read, and no backend call.
	mux.Handle("/v1/", tracing.HTTPHandler(s.cfg.TracerProvider,
		noStore(s.gateREST(rest, bodyDeadline(s.cfg.BodyReadTimeout,
			observeREST(s.cfg.ObserveREST, s.cfg.MaxRequestBytes, limitBody(rest, s.cfg.MaxRequestBytes)))))))
	if s.cfg.WebApp != nil {
		mux.Handle("/", s.cfg.WebApp)
	} else {
		mux.HandleFunc("/", noWebApp)
	}
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.serving.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.openapi)
}

// noWebApp stands in for the web app until it is built (Config.WebApp).
func noWebApp(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("oz gateway\n\nThe web app is not built yet. The REST API is under /v1/, described by /openapi.json.\n"))
}

// limitBody refuses REST bodies over max bytes. A declared length over the
// limit gets 413 at once, in grpc-gateway's error shape; a chunked body is cut
// at the limit, which grpc-gateway reports as 400.
func limitBody(rest *runtime.ServeMux, max int64) http.Handler {
	h := http.MaxBytesHandler(rest, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			_, out := runtime.MarshalerForRequest(rest, r)
			runtime.HTTPError(r.Context(), rest, out, w, r, &runtime.HTTPStatusError{
				HTTPStatus: http.StatusRequestEntityTooLarge,
				Err:        status.Errorf(codes.InvalidArgument, "request body: larger than %d bytes", max),
			})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// noStore keeps API responses (secret metadata, new bearer tokens) out of
// browser and proxy caches.
func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// securityHeaders are set on every HTTP response: HTTPS only from now on
// (the gateway serves nothing over plain HTTP; a year, renewed by every
// response), no MIME sniffing (a JSON body is never run as script), and no
// Referer leaking resource names to other sites.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// unconfigured stands in for the connection to a backend that has no
// address: every call fails with Unavailable.
type unconfigured string

func (b unconfigured) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return status.Error(codes.Unavailable, notConfiguredMessage(string(b)))
}

func (b unconfigured) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unavailable, notConfiguredMessage(string(b)))
}
