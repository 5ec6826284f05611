package ozfake

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// A fake service is a struct of func fields named after the RPCs of the
// service: CreateAgentFunc of type
//
//	func(context.Context, *scopev1.CreateAgentRequest) (*scopev1.CreateAgentResponse, error)
//
// serves CreateAgent; while it is nil (or when the struct has no field for
// an RPC), the RPC answers Unimplemented. register serves such a struct
// without a method per RPC, and checks it against the service's descriptor
// first: a field with a wrong name or type fails the test that starts the
// server, and TestFakesMatchServices, instead of never being called.

// register serves fake, a pointer to a fake struct, as the service desc
// describes, on gs. The handlers read the fields at each call.
func register(gs *grpc.Server, desc *grpc.ServiceDesc, fake any) error {
	methods, fields, err := fakeFields(desc, fake)
	if err != nil {
		return err
	}
	sd := &grpc.ServiceDesc{ServiceName: desc.ServiceName, HandlerType: (*any)(nil), Metadata: desc.Metadata}
	for _, m := range desc.Methods {
		md := methods.ByName(protoreflect.Name(m.MethodName))
		if md == nil {
			return fmt.Errorf("fake %s: no method %s in its descriptor", desc.ServiceName, m.MethodName)
		}
		req, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
		if err != nil {
			return fmt.Errorf("fake %s: %w", desc.ServiceName, err)
		}
		sd.Methods = append(sd.Methods, grpc.MethodDesc{
			MethodName: m.MethodName,
			Handler:    handler("/"+desc.ServiceName+"/"+m.MethodName, req, fields[m.MethodName]),
		})
	}
	gs.RegisterService(sd, fake)
	return nil
}

// fakeFields returns the methods of desc and the func fields of fake by
// the method they serve, after checking that each names a method of desc
// and has its request and response types.
func fakeFields(desc *grpc.ServiceDesc, fake any) (protoreflect.MethodDescriptors, map[string]reflect.Value, error) {
	v := reflect.ValueOf(fake)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, nil, fmt.Errorf("fake %s: got %T, want a pointer to a struct", desc.ServiceName, fake)
	}
	if len(desc.Streams) > 0 {
		return nil, nil, fmt.Errorf("fake %s: streaming methods are not supported", desc.ServiceName)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(desc.ServiceName))
	if err != nil {
		return nil, nil, fmt.Errorf("fake %s: %w", desc.ServiceName, err)
	}
	methods := d.(protoreflect.ServiceDescriptor).Methods()
	ctxType, errType := reflect.TypeFor[context.Context](), reflect.TypeFor[error]()
	s, t := v.Elem(), v.Elem().Type()
	fields := map[string]reflect.Value{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := strings.CutSuffix(f.Name, "Func")
		m := methods.ByName(protoreflect.Name(name))
		if !ok || m == nil {
			return nil, nil, fmt.Errorf("fake %s: %s.%s serves no method of it", desc.ServiceName, t.Name(), f.Name)
		}
		ft := f.Type
		if ft.Kind() != reflect.Func || ft.NumIn() != 2 || ft.NumOut() != 2 ||
			ft.In(0) != ctxType || !isMessage(ft.In(1), m.Input()) ||
			!isMessage(ft.Out(0), m.Output()) || ft.Out(1) != errType {
			return nil, nil, fmt.Errorf("fake %s: %s.%s is %s, want func(context.Context, *%s) (*%s, error)",
				desc.ServiceName, t.Name(), f.Name, ft, m.Input().Name(), m.Output().Name())
		}
		fields[name] = s.Field(i)
	}
	return methods, fields, nil
}

// isMessage reports whether t is a pointer to the Go type of message md.
func isMessage(t reflect.Type, md protoreflect.MessageDescriptor) bool {
	if t.Kind() != reflect.Pointer || !t.Implements(reflect.TypeFor[proto.Message]()) {
		return false
	}
	return reflect.Zero(t).Interface().(proto.Message).ProtoReflect().Descriptor().FullName() == md.FullName()
}

// handler decodes a request of type reqType and calls fn with it through
// the server's interceptor; it answers Unimplemented while fn is nil, and
// always when the fake has no field for the method (fn is the zero
// Value).
func handler(fullMethod string, reqType protoreflect.MessageType, fn reflect.Value) grpc.MethodHandler {
	short := fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := reqType.New().Interface()
		if err := dec(req); err != nil {
			return nil, err
		}
		call := func(ctx context.Context, req any) (any, error) {
			if !fn.IsValid() || fn.IsNil() {
				return nil, unimplemented(short)
			}
			out := fn.Call([]reflect.Value{reflect.ValueOf(&ctx).Elem(), reflect.ValueOf(req)})
			err, _ := out[1].Interface().(error)
			return out[0].Interface(), err
		}
		if interceptor == nil {
			return call(ctx, req)
		}
		return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: fullMethod}, call)
	}
}
