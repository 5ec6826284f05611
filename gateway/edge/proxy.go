package edge

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ozsecrets/oz/lib/dial"
	"github.com/ozsecrets/oz/lib/reqmeta"
)

// The native gRPC path is a transparent proxy: messages are forwarded as
// bytes, never decoded, so the gateway needs no knowledge of the methods it
// routes and never holds a decoded value. Hand-written because no maintained
// proxy library is available here (mwitkow/grpc-proxy is unmaintained,
// siderolabs/grpc-proxy is not on the module proxy); it follows the shape of
// mwitkow's.

// frame is one gRPC message, kept as its encoded bytes.
type frame struct{ payload []byte }

// codec passes frames through untouched and hands every other message type
// to the proto codec, so the gateway's own services (health, reflection)
// keep working on the same grpc.Server.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2(protocodec.Name)} }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f.payload)}, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		// Copy: grpc reuses data's buffers once Unmarshal returns.
		f.payload = data.Materialize()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// Name is "proto" because that is what the frames are: towards the backends
// the content-type stays application/grpc+proto.
func (codec) Name() string { return protocodec.Name }

// proxyStreamDesc describes every proxied call as bidirectional streaming,
// which also carries unary and one-way streaming calls unchanged.
var proxyStreamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// proxy forwards calls to the backend that owns them (see routes).
type proxy struct {
	conns map[string]*grpc.ClientConn // by backend name
	codec codec
	gate  *authGate // nil: no limit on failed authentication
	log   *slog.Logger
	// timeout bounds each call (Config.BackendTimeout). Every method
	// routed is unary (the API has no streaming method), so the bound is
	// on the whole call.
	timeout time.Duration
}

// handle is the grpc.UnknownServiceHandler: it receives every call for a
// service the gateway does not implement itself.
func (p *proxy) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "no method name")
	}
	// Internal methods are refused before routing and before anything is
	// read from the caller, so no table entry can ever forward them.
	if isInternal(method) {
		return errInternalMethod
	}
	name := backendFor(method)
	if name == "" {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	conn := p.conns[name]
	if conn == nil {
		return status.Error(codes.Unavailable, notConfiguredMessage(name))
	}

	in := ss.Context()
	md, _ := metadata.FromIncomingContext(in)
	var authorization string
	if v := md.Get("authorization"); len(v) > 0 {
		authorization = v[0]
	}
	var remote string
	if pr, ok := peer.FromContext(in); ok && pr.Addr != nil {
		remote = pr.Addr.String()
	}
	settle, retryAfter := p.gate.admit(remote, authorization)
	if settle == nil {
		return refusal(retryAfter)
	}
	// The caller's deadline and cancellation carry over to the backend call
	// through the context; the gateway's own bound may end it sooner.
	ctx := withAnswerMark(metadata.NewOutgoingContext(in, forwardMetadata(in, md)))
	bctx, done := dial.Bound(ctx, backendTitle(name), backendTimeout(method, p.timeout))
	err := done(p.forward(bctx, ss, conn, method, func() { settle(authenticated) }))
	switch status.Code(err) {
	case codes.OK:
		settle(authenticated)
	case codes.Unauthenticated:
		settle(unauthenticated)
	default:
		settle(neither)
	}
	return hideUnavailable(ctx, p.log, name, err)
}

// forward makes the call to the backend and copies it both ways until it
// ends, with the backend's status. answered is called once the backend has
// sent response headers: it has let the caller in.
func (p *proxy) forward(ctx context.Context, ss grpc.ServerStream, conn *grpc.ClientConn, method string, answered func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	cs, err := grpc.NewClientStream(ctx, proxyStreamDesc, conn, method, grpc.ForceCodecV2(p.codec))
	if err != nil {
		return err // already a status (e.g. Unavailable)
	}

	toBackend := make(chan error, 1)
	go func() { toBackend <- forwardRequests(ss, cs) }()
	toCaller := make(chan error, 1)
	go func() { toCaller <- forwardResponses(cs, ss, answered) }()

	for {
		select {
		case err := <-toBackend:
			if err == nil {
				toBackend = nil // the caller is done sending; wait for the backend
				continue
			}
			// The caller's side broke (cancelled, or a message too large):
			// abandon the backend call, and wait for the response forwarder
			// so that nothing writes to ss after this handler returns.
			cancel()
			<-toCaller
			return err
		case err := <-toCaller:
			// The backend has finished: its trailers and status are the
			// caller's, unchanged (status details included).
			ss.SetTrailer(cs.Trailer())
			return err
		}
	}
}

// forwardRequests copies the caller's messages to the backend until the
// caller closes its side. It returns nil once the caller is done or the
// backend has ended the call (the status then comes from forwardResponses).
func forwardRequests(ss grpc.ServerStream, cs grpc.ClientStream) error {
	for {
		var f frame
		if err := ss.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return cs.CloseSend()
			}
			return err
		}
		if err := cs.SendMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the backend ended the call; RecvMsg has its status
			}
			return err
		}
	}
}

// forwardResponses copies the backend's headers and messages to the caller,
// calling answered when the headers come. It returns nil when the backend ended the call with OK, and the backend's
// status error otherwise.
func forwardResponses(cs grpc.ClientStream, ss grpc.ServerStream, answered func()) error {
	// Headers are forwarded as soon as they come, not with the first message:
	// a streaming backend may send them long before.
	hdr, err := cs.Header()
	if err != nil {
		return err
	}
	// hdr is nil for a trailers-only response (typically an error): then
	// there are no headers to forward and RecvMsg returns the status.
	if hdr != nil {
		answered()
		// The gateway already set x-request-id; the backend echoing it
		// must not make it appear twice.
		delete(hdr, requestIDKey)
		if err := ss.SendHeader(hdr); err != nil {
			return err
		}
	}
	for {
		var f frame
		if err := cs.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := ss.SendMsg(&f); err != nil {
			return err
		}
	}
}

// forwardMetadata returns the metadata sent to the backend: the caller's,
// minus what describes the hop to the gateway (grpc sets its own for the
// next hop), plus the request id and the caller's address. authorization is
// forwarded unchanged: the backends authenticate the caller, not the gateway.
func forwardMetadata(ctx context.Context, in metadata.MD) metadata.MD {
	out := make(metadata.MD, len(in)+2)
	for k, v := range in {
		if strings.HasPrefix(k, ":") {
			continue // pseudo-headers such as :authority
		}
		switch k {
		case "content-type", "user-agent", "te", "grpc-timeout",
			"grpc-encoding", "grpc-accept-encoding",
			requestIDKey, "x-forwarded-for", reqmeta.Peer,
			// The caller's trace context is not trusted (see
			// Config.TracerProvider): backends continue the gateway's trace,
			// or start their own.
			"traceparent", "tracestate":
			continue
		}
		if k == reqmeta.Client && slices.Contains(v, restClient) {
			// "rest" is the gateway's to say, on REST calls only: the
			// services believe it from the gateway's certificate.
			continue
		}
		out[k] = append([]string(nil), v...)
	}
	out.Set(requestIDKey, requestIDFrom(ctx))
	// Same shape as the REST path (grpc-gateway): whatever the caller claimed,
	// then the address the gateway saw, which is the one to trust.
	xff := in.Get("x-forwarded-for")
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
			xff = append(xff, host)
			// The source the services record (audit events of refused
			// requests), replacing any the caller sent.
			out.Set(reqmeta.Peer, host)
		}
	}
	if len(xff) > 0 {
		out.Set("x-forwarded-for", strings.Join(xff, ", "))
	}
	return out
}
