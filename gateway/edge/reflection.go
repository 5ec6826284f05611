package edge

import (
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// registerReflection serves reflection for the gateway's own services and,
// through the routes, for the API services it forwards, so that tools such
// as grpcurl can list and describe the API through the single public
// address. Descriptors come from the generated packages linked into the
// gateway; internal services are never listed.
func registerReflection(gs *grpc.Server, conns map[string]*grpc.ClientConn) {
	opts := reflection.ServerOptions{Services: reflectedServices{gs, conns}}
	reflectionv1.RegisterServerReflectionServer(gs, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(gs, reflection.NewServer(opts))
}

// reflectedServices lists the server's own services plus every public API
// service the gateway forwards to a configured backend.
type reflectedServices struct {
	gs    *grpc.Server
	conns map[string]*grpc.ClientConn
}

func (r reflectedServices) GetServiceInfo() map[string]grpc.ServiceInfo {
	infos := r.gs.GetServiceInfo()
	for _, name := range forwardedServices() {
		if r.conns[backendFor("/"+name+"/")] != nil {
			infos[name] = grpc.ServiceInfo{}
		}
	}
	return infos
}

// forwardedServices returns the full names of the services, among the
// descriptors linked into the gateway, that a route sends to a backend and
// that are not internal, sorted. They are found from the descriptors, not
// from a list, so that a service added to a routed package (the optional
// audit service was missed once) is listed without anyone remembering to.
func forwardedServices() []string {
	var names []string
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			name := string(fd.Services().Get(i).FullName())
			method := "/" + name + "/"
			if !isInternal(method) && backendFor(method) != "" {
				names = append(names, name)
			}
		}
		return true
	})
	slices.Sort(names)
	return names
}
