// Package refwire converts run resolution's secret reference
// (runrules.Secret) to and from the wire (oz.internalapi.v1.SecretRef),
// once, for both ends of the internal RunSecretsService: the secretstore's
// server and the resolver's client.
package refwire

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ozsecrets/oz/lib/hostbind"
	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/internal/runrules"
)

// ToProto is secs on the wire. A zero creation time is left out, and so is
// the binding of a secret not bound to hosts.
func ToProto(secs []runrules.Secret) []*internalapiv1.SecretRef {
	out := make([]*internalapiv1.SecretRef, len(secs))
	for i, s := range secs {
		out[i] = &internalapiv1.SecretRef{Owner: s.Owner, Name: s.Name, ValueVersion: s.Version, Binding: s.Binding.Proto()}
		if !s.Created.IsZero() {
			out[i].CreateTime = timestamppb.New(s.Created)
		}
	}
	return out
}

// FromProto is refs off the wire: the inverse of ToProto. It checks
// nothing; the receiving end validates what it is sent.
func FromProto(refs []*internalapiv1.SecretRef) []runrules.Secret {
	out := make([]runrules.Secret, len(refs))
	for i, r := range refs {
		out[i] = runrules.Secret{Owner: r.GetOwner(), Name: r.GetName(), Version: r.GetValueVersion(), Binding: hostbind.FromProto(r.GetBinding())}
		if r.GetCreateTime() != nil {
			out[i].Created = r.GetCreateTime().AsTime()
		}
	}
	return out
}
